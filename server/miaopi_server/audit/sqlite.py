"""SQLite audit store (a store.AuditStore): WAL, synchronous=FULL, group commit, one writer.

Callers hand a PendingRecord to `append` and get a Future. The writer takes every record
waiting at that moment, chains and seals them in order, inserts them in one transaction and
commits once (one fsync for the whole batch); only then are the futures resolved, so a decision
is never returned before its record is durable. If the commit fails, every record of the batch
fails with AuditUnavailable and the chain head is left where it was.

Opening the store brings the database's schema up to date (sqlite_migrate.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from miaopi_server.audit import migrations
from miaopi_server.audit.canonical import GENESIS_HASH, canonical, digest, sha256_hex
from miaopi_server.audit.record import (
    PendingRecord,
    StoredRecord,
    canonical_body,
    column_time,
    hash_body,
)
from miaopi_server.audit.seal import Sealer, verify_seal
from miaopi_server.audit.sqlite_migrate import migrate
from miaopi_server.audit.store import DuplicateRequest, ListFilter, Verification
from miaopi_server.errors import AuditUnavailable

MAX_BATCH = 512
CHECKPOINT_SECONDS = 1.0
_COLUMNS = "seq, decision_id, request_id, case_digest, body, case_json, hash, key_id, signature"


def _connect(path: Path, busy_timeout_ms: int, readonly: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    conn = sqlite3.connect(
        uri, uri=True, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    return conn


def _row(row: tuple[Any, ...]) -> StoredRecord:
    seq, decision_id, request_id, case_dig, body_json, case_json, h, key_id, sig = row
    body = json.loads(body_json)
    return StoredRecord(
        seq=seq,
        decision_id=decision_id,
        request_id=request_id or "",
        case_digest=case_dig,
        prev_hash=body["prev_hash"],
        node_id=body["node_id"],
        window=body["window"],
        body_json=body_json,
        case=json.loads(case_json),
        record_hash=h,
        key_id=key_id,
        signature=bytes(sig),
        _parsed=body,
    )


class SQLiteAuditStore:
    def __init__(
        self,
        path: Path,
        sealer: Sealer,
        busy_timeout_ms: int = 5000,
        previous_keys: dict[str, bytes] | None = None,
        schema: Sequence[migrations.Migration] | None = None,
    ):
        """Open (creating if need be) the database at `path` and bring its schema to the
        newest of `schema` (default: the shipped migrations). Raises AuditSchemaTooNew for a
        database a newer server migrated, AuditUnavailable when it cannot be opened."""
        self.path = path
        self.sealer = sealer
        # Public keys of rotated-out sealing keys: records they sealed still verify.
        self.keys = {**(previous_keys or {}), sealer.key_id: sealer.public_raw}
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():  # facts are personal data: owner-only from the first byte
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        # Writers in several processes (`--workers`) queue on this lock file instead of
        # SQLite's busy handler, which sleep-polls in steps of up to 100 ms; this polls in
        # steps of at most 2 ms, and the kernel releases it when its holder dies.
        self._lock_fd = os.open(f"{path}.writelock", os.O_RDWR | os.O_CREAT, 0o600)
        self._busy_timeout_s = busy_timeout_ms / 1000
        writer = None
        try:
            writer = self._writer = _connect(path, busy_timeout_ms)
            self.schema_version = self._prepare(migrations.shipped() if schema is None else schema)
        except BaseException as exc:
            if writer is not None:
                writer.close()
            os.close(self._lock_fd)
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
        self._queue: queue.SimpleQueue[tuple[PendingRecord, Future[StoredRecord]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._write_loop, name="audit-writer", daemon=True)
        self._thread.start()
        self.batches = 0
        self.records_written = 0

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
            return migrate(self._writer, schema, str(self.path))
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # -- writing
    def append(self, pending: PendingRecord) -> Future[StoredRecord]:
        """Queue a record; the future resolves once it is committed (or fails)."""
        fut: Future[StoredRecord] = Future()
        self._queue.put((pending, fut))
        return fut

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(nxt)
            self._write_batch(batch)

    def _write_batch(self, batch: list[tuple[PendingRecord, Future[StoredRecord]]]) -> None:
        # A caller that gave up (its RPC was cancelled) is skipped; once running, a future can
        # no longer be cancelled, so resolving it below cannot fail and kill this thread.
        batch = [(p, f) for p, f in batch if f.set_running_or_notify_cancel()]
        if not batch:
            return
        written: list[tuple[StoredRecord, Future[StoredRecord]]] = []
        outcomes: list[tuple[Future[StoredRecord], BaseException]] = []
        in_batch: dict[tuple[str, str], StoredRecord] = {}
        locked = False
        try:
            self._lock_writers()
            locked = True
            self._writer.execute("BEGIN IMMEDIATE")
            # The head is read under the write lock: several server processes may append to
            # one database (`--workers`), and the chain runs through all of them in seq order.
            head = "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1"
            seq, prev = self._writer.execute(head).fetchone() or (0, GENESIS_HASH)
            for pending, fut in batch:
                key = (pending.window_id, pending.request_id)
                if pending.request_id:
                    existing = in_batch.get(key) or self._by_request(self._writer, *key)
                    if existing is not None:
                        outcomes.append((fut, DuplicateRequest(existing)))
                        continue
                seq += 1
                body_bytes = canonical_body(seq, prev, pending)
                h = sha256_hex(body_bytes)
                body_json = body_bytes.decode()
                sig = self.sealer.seal(h)
                record = StoredRecord(
                    seq=seq,
                    decision_id=pending.decision_id,
                    request_id=pending.request_id,
                    case_digest=pending.case_digest,
                    prev_hash=prev,
                    node_id=pending.node_id,
                    window=pending.window,
                    body_json=body_json,
                    case=pending.case,
                    record_hash=h,
                    key_id=self.sealer.key_id,
                    signature=sig,
                )
                self._writer.execute(
                    "INSERT INTO records (seq, decision_id, request_id, item_code, outcome,"
                    " window_id, decided_at, case_digest, body, case_json, hash, key_id,"
                    " signature) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        seq,
                        pending.decision_id,
                        pending.request_id or None,
                        pending.item_code,
                        pending.outcome,
                        pending.window_id,
                        pending.decided_at,
                        pending.case_digest,
                        body_json,
                        pending.case_json.decode(),
                        h,
                        self.sealer.key_id,
                        sig,
                    ),
                )
                if pending.request_id:
                    in_batch[key] = record
                written.append((record, fut))
                prev = h
            self._writer.execute("COMMIT")
        except Exception as exc:  # the batch is not durable: none of it may be acknowledged
            with suppress(sqlite3.Error):
                self._writer.execute("ROLLBACK")
            failure = AuditUnavailable(f"audit trail not writable: {exc}")
            for _, fut in batch:
                fut.set_exception(failure)
            return
        finally:
            if locked:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        self.batches += 1
        self.records_written += len(written)
        for record, fut in written:
            fut.set_result(record)
        for fut, refusal in outcomes:
            fut.set_exception(refusal)

    def _lock_writers(self) -> None:
        """Take the writers' lock file, or raise once the busy timeout has passed (a frozen
        writer in another process must not stop this one failing closed). A holder keeps it
        for one commit, so the wait starts with short polls."""
        deadline = time.monotonic() + self._busy_timeout_s
        pause = 0.0002
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise AuditUnavailable("audit writers' lock busy beyond the timeout") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.002)

    @staticmethod
    def _by_request(
        conn: sqlite3.Connection, window_id: str, request_id: str
    ) -> StoredRecord | None:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM records WHERE window_id = ? AND request_id = ?",
            (window_id, request_id),
        ).fetchone()
        return _row(row) if row else None

    # -- reading
    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._read_lock:
            yield self._reader

    def find_request(self, window_id: str, request_id: str) -> StoredRecord | None:
        with self._read() as conn:
            return self._by_request(conn, window_id, request_id)

    def get(self, decision_id: str) -> StoredRecord | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM records WHERE decision_id = ?", (decision_id,)
            ).fetchone()
        return _row(row) if row else None

    def list(self, f: ListFilter, limit: int, before_seq: int = 0) -> list[StoredRecord]:
        """Newest first; `before_seq` continues a previous page."""
        where: list[str] = []
        args: list[str | int] = []
        for column, value in (
            ("item_code", f.item_code),
            ("outcome", f.outcome),
            ("window_id", f.window_id),
        ):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if f.decided_from:
            where.append("decided_at >= ?")
            args.append(f.decided_from)
        if f.decided_to:
            where.append("decided_at < ?")
            args.append(f.decided_to)
        if before_seq:
            where.append("seq < ?")
            args.append(before_seq)
        sql = f"SELECT {_COLUMNS} FROM records"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        with self._read() as conn:
            rows = conn.execute(sql, (*args, limit)).fetchall()
        return [_row(r) for r in rows]

    def verify(self, from_seq: int = 1, to_seq: int = 0) -> Verification:
        return verify_database(self.path, self.keys, from_seq, to_seq)

    def _checkpoint_loop(self) -> None:
        """A PASSIVE checkpoint every CHECKPOINT_SECONDS: it copies what it can without
        waiting for (or blocking) writers or readers; the WAL restarts from its beginning once
        everything in it is in the database. Failures are retried next time: the WAL keeps the
        records durable meanwhile."""
        while not self._closing.wait(CHECKPOINT_SECONDS):
            with suppress(sqlite3.Error):
                self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._closing.set()
        self._checkpoint_thread.join()
        self._checkpointer.close()  # the last connection to close checkpoints the rest
        self._writer.close()
        self._reader.close()
        os.close(self._lock_fd)


def verify_database(
    path: Path, keys: dict[str, bytes], from_seq: int = 1, to_seq: int = 0
) -> Verification:
    """Re-check an audit database: chain, hashes, columns, case digests and seals.

    Works on a copy or a live database; `keys` maps key ids to raw Ed25519 public keys.
    """
    conn = _connect(path, 5000, readonly=True)
    try:
        from_seq = max(from_seq, 1)
        prev = GENESIS_HASH
        if from_seq > 1:
            row = conn.execute("SELECT hash FROM records WHERE seq = ?", (from_seq - 1,)).fetchone()
            if row is None:
                return Verification(False, 0, from_seq - 1, "gap: record missing")
            prev = row[0]
        sql = (
            "SELECT seq, decision_id, request_id, item_code, outcome, window_id, decided_at,"
            " case_digest, body, case_json, hash, key_id, signature FROM records WHERE seq >= ?"
        )
        args: list[int] = [from_seq]
        if to_seq:
            sql += " AND seq <= ?"
            args.append(to_seq)
        expected_seq, checked = from_seq, 0
        for (
            seq,
            decision_id,
            request_id,
            item_code,
            outcome,
            window_id,
            decided_at,
            case_dig,
            body_text,
            case_json,
            h,
            key_id,
            sig,
        ) in conn.execute(sql + " ORDER BY seq", args):
            problem = _check_record(
                seq,
                expected_seq,
                prev,
                decision_id,
                request_id,
                item_code,
                outcome,
                window_id,
                decided_at,
                case_dig,
                body_text,
                case_json,
                h,
                keys.get(key_id),
                bytes(sig),
            )
            if problem:
                return Verification(
                    False, checked, seq if problem != "gap" else expected_seq, problem
                )
            prev, expected_seq, checked = h, seq + 1, checked + 1
        return Verification(True, checked)
    finally:
        conn.close()


def _check_record(
    seq: int,
    expected_seq: int,
    prev: str,
    decision_id: str,
    request_id: Any,
    item_code: str,
    outcome: str,
    window_id: str,
    decided_at: str,
    case_dig: str,
    body_text: str,
    case_json: str,
    h: str,
    public_raw: bytes | None,
    sig: bytes,
) -> str:
    if seq != expected_seq:
        return "gap"
    try:
        body = json.loads(body_text)
        case = json.loads(case_json)
    except ValueError:
        return "record is not valid JSON"
    if canonical(body).decode() != body_text:
        return "record is not in canonical form"
    if hash_body(body) != h:
        return "hash mismatch"
    if body.get("seq") != seq or body.get("prev_hash") != prev:
        return "chain broken"
    if digest(case) != case_dig or body.get("case_digest") != case_dig:
        return "case does not match its digest"
    decision = body.get("decision", {})
    columns = (
        decision.get("decision_id"),
        decision.get("request_id", "") or None,
        decision.get("item_code"),
        str(decision.get("outcome", "")).removeprefix("OUTCOME_"),
        body.get("window", {}).get("window_id", ""),
        column_time(decision.get("decided_at")),
    )
    if columns != (decision_id, request_id, item_code, outcome, window_id, decided_at):
        return "indexed columns disagree with the record"
    if public_raw is None:
        return "unknown sealing key"
    if not verify_seal(public_raw, h, sig):
        return "bad signature"
    return ""
