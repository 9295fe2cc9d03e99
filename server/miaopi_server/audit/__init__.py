"""The audit trail: every decision recorded, hash-chained and sealed before it is returned."""
