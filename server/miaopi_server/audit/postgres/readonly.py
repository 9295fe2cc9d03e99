"""Reading a shared PostgreSQL trail from outside the servers: `miaopi audit verify --store`,
`miaopi audit prove-consistency --store` and `miaopi audit export --store` (a supervision
office checking the database itself).

One connection, one REPEATABLE READ READ ONLY transaction (and the session's
default_transaction_read_only on: nothing here can write, whatever SQL the shared code runs),
so the records, the tree and the heads are read as of one instant while nodes append. Every
query runs through a named (server-side) cursor fetched in batches, so memory stays flat on a
trail of any length: the verification is audit/sqlite_verify.py's, on this connection.
Messages name the database without its password.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import conninfo

from miaopi_server.audit.dialect import Cursor
from miaopi_server.audit.postgres.conn import DOWN, PgConn, placeholders, where
from miaopi_server.audit.sqlite_verify import snapshot_consistency, verify_snapshot
from miaopi_server.audit.store import Verification
from miaopi_server.audit.treehead import TreeHead
from miaopi_server.errors import AuditUnavailable

__all__ = ["store_records", "verify_store"]

BATCH = 500  # rows per FETCH: what a scan holds in memory at a time
CONNECT_TIMEOUT_S = 10
_names = itertools.count(1)


class _Streamed:
    """A server-side cursor as the shared SQL reads one (dialect.Cursor); closed once read,
    so a long verification does not pile up open cursors in its transaction."""

    def __init__(self, cur: psycopg.ServerCursor[Any]):
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def fetchone(self) -> Any:
        try:
            return self._cur.fetchone()
        finally:
            self._cur.close()

    def fetchall(self) -> list[Any]:
        try:
            return self._cur.fetchall()
        finally:
            self._cur.close()

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self._cur  # FETCH FORWARD itersize at a time
        finally:
            self._cur.close()


class StreamingConn(PgConn):
    """PgConn whose queries are named cursors: rows come BATCH at a time, never all at once."""

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        cur = self.raw.cursor(name=f"miaopi_read_{next(_names)}")
        cur.itersize = BATCH
        if parameters:
            cur.execute(placeholders(sql), parameters)
        else:
            cur.execute(sql)
        return _Streamed(cur)


def _scrubbed(text: str, dsn: str) -> str:
    """`text` with the DSN's password, if it has one, blanked out."""
    try:
        password = conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        return text
    return text.replace(str(password), "***") if password else text


def _connect(dsn: str) -> psycopg.Connection[Any]:
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        raise AuditUnavailable("--store: not a valid PostgreSQL DSN (postgresql://...)") from None
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    params.setdefault("application_name", "miaopi audit (read-only)")
    try:
        return psycopg.connect(conninfo.make_conninfo("", **params), autocommit=True)
    except DOWN as exc:
        raise AuditUnavailable(
            f"cannot reach audit database {where(dsn)}: {_scrubbed(str(exc).strip(), dsn)}"
        ) from None


@contextmanager
def snapshot(dsn: str) -> Iterator[StreamingConn]:
    """A read-only connection in one REPEATABLE READ snapshot of the trail `dsn` names;
    AuditUnavailable when it cannot be reached, is not an audit trail, or fails mid-read."""
    raw = _connect(dsn)
    try:
        conn = StreamingConn(raw)
        conn.raw.execute("SET default_transaction_read_only = on")
        conn.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        (found,) = conn.raw.execute("SELECT to_regclass('records') IS NOT NULL").fetchone() or (
            False,
        )
        if not found:
            raise AuditUnavailable(f"audit database {where(dsn)} is not an audit trail")
        yield conn
    except DOWN as exc:
        raise AuditUnavailable(
            f"cannot read audit database {where(dsn)}: {_scrubbed(str(exc).strip(), dsn)}"
        ) from None
    finally:
        raw.close()  # ends the transaction: nothing to commit


def verify_store(
    dsn: str,
    keys: dict[str, bytes],
    from_seq: int = 1,
    to_seq: int = 0,
    witness: TreeHead | None = None,
) -> Verification:
    """verify_database for the PostgreSQL trail `dsn` names: records in [from_seq, to_seq],
    the tree and its signed heads, and that the trail extends `witness`."""
    with snapshot(dsn) as conn:
        return verify_snapshot(conn, keys, from_seq, to_seq, witness)


def store_consistency(dsn: str, first: int) -> tuple[TreeHead, list[bytes]]:
    """database_consistency for the PostgreSQL trail `dsn` names: its latest signed head and
    the proof that its first `first` records are a prefix of it, read in one snapshot;
    ValueError when there is no such head or proof."""
    with snapshot(dsn) as conn:
        return snapshot_consistency(conn, first, where(dsn))


def store_records(dsn: str, item_code: str = "") -> Iterator[tuple[int, str, str]]:
    """(seq, body, case_json) of every decision of the trail whose case is still there
    (purged cases and the trail's own events are left out), oldest first, streamed."""
    sql = (
        "SELECT r.seq, r.body, c.case_json FROM records r JOIN cases c ON c.seq = r.seq"
        " WHERE r.kind = 'decision'"
    )
    args: tuple[str, ...] = ()
    if item_code:
        sql += " AND r.item_code = ?"
        args = (item_code,)
    with snapshot(dsn) as conn:
        for seq, body, case_json in conn.execute(sql + " ORDER BY r.seq", args):
            yield int(seq), str(body), str(case_json)
