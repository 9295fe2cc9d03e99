"""Shared government data (四免): the source catalogue, the provider interface and its connectors
(embedded registry, HTTP data-sharing platform) and the e-license library's licence type.

Facts are looked up here BEFORE a case is decided and handed to the decision as plain data;
nothing in `decision/` calls a provider. This package knows nothing of items: a rule file's
bindings (rules/) name sources from `catalogue`, and the edge or the offline tools run the
lookups.
"""
