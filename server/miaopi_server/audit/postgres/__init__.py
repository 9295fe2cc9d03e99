"""The audit trail on PostgreSQL: many server nodes appending to one chain and one Merkle log
(`--store postgresql://...`). psycopg is imported only in this package."""
