"""Validated case -> decision: validation, working days, the rules engine (the only module that
touches durable_rules), assembling a decision, the catalog of items by version, explain."""
