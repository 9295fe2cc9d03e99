"""The seam between the audit SQL both backends share and the little that differs.

The tree, casework, alerts and verification modules (audit/sqlite_*.py, named after the
backend they were written for) run the same SQL on SQLite and on PostgreSQL: `?`
placeholders (the PostgreSQL connection wrapper translates them), `ON CONFLICT DO NOTHING`,
`RETURNING`, blobs passed as parameters. What cannot be written once is here: how a write
transaction begins, how a JSON field is read, how a database lists its tables and columns.
A connection says which dialect it speaks by a `dialect` attribute; sqlite3's has none.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the shared SQL needs of a connection: sqlite3.Connection, or postgres.PgConn."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Any, /) -> Any: ...


@dataclass(frozen=True)
class Dialect:
    name: str
    begin_write: str  # starts a write transaction
    # Ends a SELECT whose rows a write transaction then takes: rows other transactions hold
    # are left to them (SQLite runs one write transaction at a time: nothing to add).
    skip_locked: str = ""

    def json_text(self, column: str, *path: str) -> str:
        """SQL for the text of a JSON field of a TEXT column (NULL when absent)."""
        if self.name == "postgresql":
            return f"({column}::jsonb #>> '{{{','.join(path)}}}')"
        return f"json_extract({column}, '$.{'.'.join(path)}')"

    def json_int(self, column: str, *path: str) -> str:
        """SQL for a JSON field of a TEXT column as an integer (NULL when absent)."""
        if self.name == "postgresql":
            return f"({self.json_text(column, *path)})::bigint"
        return self.json_text(column, *path)

    def json_true(self, column: str, key: str) -> str:
        """SQL that is true when the JSON object in `column` has `key` set to true."""
        if self.name == "postgresql":
            return f"({column}::jsonb -> '{key}') = 'true'::jsonb"
        return f"json_extract({column}, '$.{key}')"

    def tables(self, conn: Connection) -> set[str]:
        if self.name == "postgresql":
            sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
        return {str(n) for (n,) in conn.execute(sql)}

    def columns(self, conn: Connection, table: str) -> list[str]:
        if self.name == "postgresql":
            rows = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
                " AND table_schema = current_schema() ORDER BY ordinal_position",
                (table,),
            )
            return [str(r[0]) for r in rows]
        return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")]


def insert_rows(conn: Connection, into: str, width: int, rows: Sequence[Sequence[object]]) -> None:
    """`into` ("INSERT INTO t (a, b)") VALUES each of `rows` (`width` values each), by one
    multi-row statement per MAX_ROWS_PER_STATEMENT rows: a batch's rows of one table in one
    statement, as a batch seldom holds more. executemany would step once per row, and sqlite3
    lets go of the GIL around every step: the audit writer then waits to take it back from the
    event loop, once per row of every table (and every wait wakes it several times)."""
    for done in range(0, len(rows), MAX_ROWS_PER_STATEMENT):
        chunk = rows[done : done + MAX_ROWS_PER_STATEMENT]
        conn.execute(_multi_row(into, width, len(chunk)), [v for row in chunk for v in row])


# Each row count is a statement of its own, prepared once and kept by the connection
# (audit/sqlite.py sizes the writer's statement cache for them). 64 rows of the widest table
# (records, 12 columns) are 768 parameters, far within SQLite's and PostgreSQL's limits.
MAX_ROWS_PER_STATEMENT = 64


@cache
def _multi_row(into: str, width: int, size: int) -> str:
    row = "(" + ",".join("?" * width) + ")"
    return f"{into} VALUES {','.join([row] * size)}"


SQLITE = Dialect("sqlite", "BEGIN IMMEDIATE")
POSTGRES = Dialect("postgresql", "BEGIN", " FOR UPDATE SKIP LOCKED")


def dialect_of(conn: Connection) -> Dialect:
    found = getattr(conn, "dialect", SQLITE)
    assert isinstance(found, Dialect)
    return found
