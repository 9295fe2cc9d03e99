"""SQLite audit store (a store.AuditStore): WAL, synchronous=FULL, group commit, one writer.

Everything but the database is audit/chainstore.py; here: the connections (one writer, one
reader, a checkpointer, the webhook deliverer's), the writers' lock file (`--workers` share
the file), migrations at open (sqlite_migrate.py), secure_delete for purges, and verification
of the file read-only.
"""

from __future__ import annotations

import builtins
import datetime as dt
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from miaopi_server.audit import migrations
from miaopi_server.audit.chainstore import MAX_BATCH, ChainStore, now_ms, with_proof
from miaopi_server.audit.dialect import MAX_ROWS_PER_STATEMENT, Connection
from miaopi_server.audit.seal import Sealer
from miaopi_server.audit.sqlite_alerts import raise_alerts
from miaopi_server.audit.sqlite_casework import tasks_not_final
from miaopi_server.audit.sqlite_migrate import migrate
from miaopi_server.audit.sqlite_verify import verify_database
from miaopi_server.audit.store import Verification
from miaopi_server.audit.witness import witness_path
from miaopi_server.casework.alerts import Alert
from miaopi_server.casework.model import Task
from miaopi_server.errors import AuditUnavailable

__all__ = ["MAX_BATCH", "SQLiteAuditStore", "now_ms", "verify_database", "with_proof"]
CHECKPOINT_SECONDS = 1.0


def _connect(
    path: Path, busy_timeout_ms: int, readonly: bool = False, statements: int = 128
) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    conn = sqlite3.connect(
        uri,
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        timeout=busy_timeout_ms / 1000,
        cached_statements=statements,
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    return conn


class SQLiteAuditStore(ChainStore):
    _writer: sqlite3.Connection

    def __init__(
        self,
        path: Path,
        sealer: Sealer,
        busy_timeout_ms: int = 5000,
        previous_keys: dict[str, bytes] | None = None,
        schema: Sequence[migrations.Migration] | None = None,
        reanchor: str = "",
        node_id: str = "",
    ):
        """Open (creating if need be) the database at `path` and bring its schema to the
        newest of `schema` (default: the shipped migrations). Raises AuditSchemaTooNew for a
        database a newer server migrated, AuditTrailDiverged for a trail behind or forked
        from its witness (unless `reanchor` gives the reason to re-anchor it, which is then
        recorded, by `node_id`), AuditUnavailable when it cannot be opened."""
        self.path = path
        self._data_version: int | None = None  # as the writer last read it (a re-anchor: at open)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():  # facts are personal data: owner-only from the first byte
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        # Writers queue on the lock file instead of SQLite's busy handler, which sleep-polls
        # in steps of up to 100 ms.
        super().__init__(
            str(path), witness_path(path), Path(f"{path}.writelock"), sealer, busy_timeout_ms,
            previous_keys, reanchor, node_id,
        )  # fmt: skip
        writer = None
        try:
            # The batch inserts' statements (one per row count and table) and the rest.
            statements = 4 * MAX_ROWS_PER_STATEMENT + 128
            writer = self._writer = _connect(path, busy_timeout_ms, statements=statements)
            self.schema_version = self._prepare(migrations.shipped() if schema is None else schema)
        except BaseException as exc:
            if writer is not None:
                writer.close()
            self._release_files()
            if isinstance(exc, sqlite3.Error):
                raise AuditUnavailable(f"cannot open audit database {path}: {exc}") from exc
            raise
        self._reader = _connect(path, busy_timeout_ms)
        self._checkpointer = _connect(path, busy_timeout_ms)
        self._closing = threading.Event()
        self._checkpoint_thread = threading.Thread(
            target=self._checkpoint_loop, name="audit-checkpoint", daemon=True
        )
        self._checkpoint_thread.start()
        self._read_lock = threading.Lock()
        self._outbox_lock = threading.Lock()
        self._outbox_conn: sqlite3.Connection | None = None
        self._start_writer()

    def _prepare(self, schema: Sequence[migrations.Migration]) -> int:
        """Set the journal mode and migrate; other processes starting on the same database
        (`--workers`, a second server) wait on the writers' lock meanwhile."""
        self._lock_writers()
        try:
            self._writer.execute("PRAGMA journal_mode = WAL")
            self._writer.execute("PRAGMA synchronous = FULL")
            # Checkpoints (copying the WAL into the database, with an fsync of its own) run in
            # a thread of their own, not inside whichever commit crosses the WAL threshold:
            # that commit, and every decision waiting on it, would otherwise wait for the copy.
            self._writer.execute("PRAGMA wal_autocheckpoint = 0")
            version = migrate(self._writer, schema, str(self.path))
            # A multi-row INSERT (dialect.insert_rows) keeps a statement journal, to undo
            # itself alone if a row fails: in memory, not a temporary file opened, written
            # and unlinked in every commit. Set after the migrations, whose index builds
            # over a large old trail may sort more than memory should hold.
            self._writer.execute("PRAGMA temp_store = MEMORY")
            self._open_trail()
            return version
        finally:
            self._unlock_writers()

    def _begin_write(self) -> None:
        self._writer.execute("BEGIN IMMEDIATE")

    def _changed_by_others(self) -> bool:
        # data_version moves when another connection commits (another process, a tool, a
        # hand), never for this connection's own commits. Unmoved, the trail's last record
        # and head are the ones this store committed: two statements fewer per batch, each a
        # wait for the GIL while the event loop runs.
        version = int(self._writer.execute("PRAGMA data_version").fetchone()[0])
        changed = version != self._data_version
        self._data_version = version
        return changed

    def _before_purge(self) -> None:
        # secure_delete: the erased facts are overwritten in the file, not left in free pages.
        self._writer.execute("PRAGMA secure_delete = ON")

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._read_lock:
            yield self._reader

    @contextmanager
    def _outbox(self) -> Iterator[Connection]:
        # A connection of its own: the deliverer's thread is neither the writer's nor the
        # readers'.
        with self._outbox_lock:
            if self._outbox_conn is None:
                self._outbox_conn = _connect(self.path, int(self._busy_timeout_s * 1000))
            yield self._outbox_conn

    def open_tasks(self) -> builtins.list[Task]:
        """Every task not final (for the metrics' gauges). Its own connection: a scrape's
        thread is neither the writer's nor the readers'."""
        conn = _connect(self.path, int(self._busy_timeout_s * 1000), readonly=True)
        try:
            return tasks_not_final(conn)
        finally:
            conn.close()

    def raise_alerts(self, now: dt.datetime, due_soon_fraction: float) -> builtins.list[Alert]:
        """Store the alerts the tasks call for as of `now` and return those new to the store
        (another process may have raised the rest). Its own connection: the scheduler's
        thread is neither the writer's nor the readers'."""
        conn = _connect(self.path, int(self._busy_timeout_s * 1000))
        try:
            return raise_alerts(conn, now, due_soon_fraction)
        finally:
            conn.close()

    def verify(self, from_seq: int = 1, to_seq: int = 0) -> Verification:
        try:
            witness = self._witness.read()
        except ValueError as exc:
            return Verification(False, 0, 0, str(exc))
        return verify_database(self.path, self.keys, from_seq, to_seq, witness)

    def _checkpoint_loop(self) -> None:
        """A PASSIVE checkpoint every CHECKPOINT_SECONDS: it copies what it can without
        waiting for (or blocking) writers or readers; the WAL restarts from its beginning once
        everything in it is in the database. Failures are retried next time: the WAL keeps the
        records durable meanwhile."""
        while not self._closing.wait(CHECKPOINT_SECONDS):
            with suppress(sqlite3.Error):
                self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        self._stop_writer()
        self._closing.set()
        self._checkpoint_thread.join()
        self._checkpointer.close()  # the last connection to close checkpoints the rest
        self._writer.close()
        # Under the readers' lock: a read still running in another thread (a scheduler pass
        # whose task was cancelled keeps running in its thread) finishes first; closing a
        # connection under a running statement crashes the process.
        with self._read_lock:
            self._reader.close()
        with self._outbox_lock:
            if self._outbox_conn is not None:
                self._outbox_conn.close()
        self._release_files()
