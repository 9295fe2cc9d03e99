"""PostgreSQL audit store (a store.AuditStore): many nodes, one chain, one Merkle log.

Everything but the database is audit/chainstore.py, as for SQLite. Across nodes:
- each batch's transaction first takes pg_advisory_xact_lock(WRITE_LOCK), then reads the
  chain head and the tree frontier, appends and commits: seq never repeats or goes back, and
  the tree runs through every node's records. Each node still group-commits what its callers
  queued, so a lock is taken once per batch, not per decision;
- idempotency: under that lock the writer looks the window's request_id up before inserting,
  and the unique index on (window_id, request_id) is the last guard: a duplicate sent to two
  nodes gets the first decision from both;
- claims and other task moves are checked and applied in the writer's transaction, under the
  same lock, so of two nodes making the same move exactly one succeeds;
- the alert scheduler runs on one node at a time (pg_try_advisory_lock(ALERTS_LOCK)); the
  alerts table's unique key would refuse a second anyway;
- the webhook's outbox: each node's deliverer leases due rows with one UPDATE over rows
  chosen FOR UPDATE SKIP LOCKED (audit/sqlite_outbox.py), so of several nodes one sends each;
- a start's publication is recorded only if the set is not archived yet, checked in the
  writer's transaction under the same lock: nodes starting with one set record it once.
The witness (the latest head this node signed or saw) stays a file under the node's state
directory, checked at start and before every commit like SQLite's: the shared trail must
extend every head this node ever handed out. A node starting without one joins the trail: the
latest head, if signed by a key the node was given, becomes its witness (`joined`).

A database that cannot be reached fails the call closed (AuditUnavailable → UNAVAILABLE); the
pool replaces broken connections, so when the database is back the node serves again without
a restart.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from miaopi_server.audit.chainstore import ChainStore
from miaopi_server.audit.dialect import Connection
from miaopi_server.audit.migrations import Migration
from miaopi_server.audit.postgres.conn import DOWN, PgConn, open_pool, where
from miaopi_server.audit.postgres.migrate import ALERTS_LOCK, WRITE_LOCK, check_schema
from miaopi_server.audit.seal import Sealer
from miaopi_server.audit.sqlite_alerts import raise_alerts
from miaopi_server.audit.sqlite_verify import verify_snapshot
from miaopi_server.audit.store import Verification
from miaopi_server.casework.alerts import Alert
from miaopi_server.errors import AuditUnavailable

__all__ = ["PostgresAuditStore"]


def is_postgres(store: str) -> bool:
    return store.startswith(("postgresql://", "postgres://"))


class PostgresAuditStore(ChainStore):
    SHARED = True

    def __init__(
        self,
        dsn: str,
        state_dir: Path,
        sealer: Sealer,
        busy_timeout_ms: int = 5000,
        previous_keys: dict[str, bytes] | None = None,
        reanchor: str = "",
        node_id: str = "",
        pool_size: int = 8,
        schema: Sequence[Migration] | None = None,
    ):
        """Connect to the database `dsn` names, which must be migrated to exactly this
        server's schema (AuditUnavailable otherwise, or AuditSchemaTooNew), and compare the
        trail with this node's witness under `state_dir` (AuditTrailDiverged)."""
        super().__init__(
            where(dsn), state_dir / "audit.witness.json", state_dir / "audit.pg.writelock",
            sealer, busy_timeout_ms, previous_keys, reanchor, node_id,
        )  # fmt: skip
        self._pool = None
        self._held: psycopg.Connection[Any] | None = None
        try:
            self._pool = open_pool(dsn, busy_timeout_ms, pool_size)
            with self._read() as conn:
                assert isinstance(conn, PgConn)
                self.schema_version = check_schema(conn, self.where, schema)
            self._lock_writers()
            try:
                self._open_trail()
            finally:
                self._unlock_writers()
        except BaseException as exc:
            if self._pool is not None:
                self._pool.close()
            self._release_files()
            if isinstance(exc, DOWN):
                raise AuditUnavailable(f"audit database {self.where}: {exc}") from None
            raise
        self._start_writer()

    # -- the writers' lock: this node's lock file, a connection, the database's lock
    def _lock_writers(self) -> None:
        super()._lock_writers()
        if self._depth > 1:
            return
        assert self._pool is not None
        try:
            raw = self._pool.getconn()
        except BaseException:
            super()._unlock_writers()
            raise
        self._held = raw
        self._writer = PgConn(raw)

    def _unlock_writers(self) -> None:
        if self._depth == 1 and self._held is not None:
            assert self._pool is not None
            held, self._held = self._held, None
            self._pool.putconn(held)
        super()._unlock_writers()

    def _begin_write(self) -> None:
        self._writer.execute("BEGIN")
        # Every node's writer queues here: the chain head and tree frontier read next are
        # the last committed, and no other node appends until this transaction ends.
        self._writer.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        assert self._pool is not None
        try:
            with self._pool.connection() as raw:
                yield PgConn(raw)
        except DOWN as exc:
            raise AuditUnavailable(f"audit database {self.where} unreachable: {exc}") from None

    @contextmanager
    def _outbox(self) -> Iterator[Connection]:
        with self._read() as conn:  # a pool connection: its transactions are its own
            yield conn

    def raise_alerts(self, now: dt.datetime, due_soon_fraction: float) -> builtins.list[Alert]:
        """One node's scheduler scans at a time (a session advisory lock, freed if its
        connection dies); a node that finds it taken skips this pass."""
        with self._read() as conn:
            (got,) = conn.execute("SELECT pg_try_advisory_lock(?)", (ALERTS_LOCK,)).fetchone()
            if not got:
                return []
            try:
                return raise_alerts(conn, now, due_soon_fraction)
            finally:
                conn.execute("SELECT pg_advisory_unlock(?)", (ALERTS_LOCK,))

    def verify(self, from_seq: int = 1, to_seq: int = 0) -> Verification:
        try:
            witness = self._witness.read()
        except ValueError as exc:
            return Verification(False, 0, 0, str(exc))
        with self._read() as conn:
            # One snapshot for the records and the tree, while other nodes append.
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                return verify_snapshot(conn, self.keys, from_seq, to_seq, witness)
            finally:
                conn.execute("ROLLBACK")

    def close(self) -> None:
        self._stop_writer()
        assert self._pool is not None
        self._pool.close()
        self._release_files()
