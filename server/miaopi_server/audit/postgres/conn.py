"""Connections to the PostgreSQL audit database: a pool, and the wrapper the shared SQL runs on.

psycopg 3 with psycopg_pool, the synchronous API: the store's writer is one thread that holds
a connection for one batch, and its readers are called from worker threads (the gRPC edge runs
them through asyncio.to_thread or an executor), like the SQLite store's; an asyncio driver
would need a second event loop in that thread or the store rewritten around coroutines, for
no gain in a design where one thread does all the writing. Connections are in autocommit mode
and the shared code says BEGIN/COMMIT itself, as it does on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from miaopi_server.audit.dialect import POSTGRES, Cursor
from miaopi_server.errors import AuditUnavailable

# What a lost, refused or timed-out database raises: the caller fails closed (UNAVAILABLE).
DOWN = (psycopg.Error, PoolTimeout)


@lru_cache(maxsize=512)
def placeholders(sql: str) -> str:
    """`?` placeholders (the shared SQL's) as psycopg's `%s`; a literal `%` doubled."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConn:
    """A psycopg connection as the shared audit SQL uses one (audit/dialect.Connection)."""

    dialect = POSTGRES

    def __init__(self, raw: psycopg.Connection[Any]):
        self.raw = raw

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        if not parameters:  # no parameters: the text is sent as it is
            return self.raw.execute(sql)
        return self.raw.execute(placeholders(sql), parameters)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> None:
        rows = list(parameters)
        if rows:
            with self.raw.cursor() as cur:
                cur.executemany(placeholders(sql), rows)


def where(dsn: str) -> str:
    """The database a DSN names, for messages and logs: never its password."""
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable DSN)"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"postgresql://{user}{host}:{port}/{parts.get('dbname') or ''}"


def open_pool(dsn: str, timeout_ms: int, size: int) -> ConnectionPool[psycopg.Connection[Any]]:
    """A pool of autocommit connections; waits for the first ones up to `timeout_ms` and
    raises AuditUnavailable when the database cannot be reached. A connection found broken
    when taken (the database restarted) is replaced, so service resumes by itself."""
    seconds = max(timeout_ms / 1000, 0.5)
    try:  # psycopg's parse error quotes the bad token, which may be the password
        conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise AuditUnavailable(f"audit database DSN does not parse: {where(dsn)}") from None

    def configure(conn: psycopg.Connection[Any]) -> None:
        # A writer waiting longer than this for the trail's lock fails its batch (closed).
        conn.execute(f"SET lock_timeout = {int(timeout_ms)}")

    pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
        dsn,
        min_size=1,
        max_size=size,
        kwargs={"autocommit": True, "connect_timeout": max(int(seconds), 1)},
        configure=configure,
        check=ConnectionPool.check_connection,
        timeout=seconds,
        open=False,
        name="miaopi-audit",
    )
    try:
        pool.open(wait=True, timeout=seconds)
    except DOWN as exc:
        pool.close()
        raise AuditUnavailable(f"cannot reach audit database {where(dsn)}: {exc}") from None
    return pool
