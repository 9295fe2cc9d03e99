"""What every audit store does the same way, whatever database it writes to: the chain,
the Merkle tree and its signed heads, group commit, idempotency per window, casework
transitions, purge, the witness, and reading records back with their receipts.

Callers hand a PendingRecord to `append` and get a Future. One writer thread takes every
record waiting at that moment, and under the writers' lock (a lock file beside the state, and
the database's own: audit/sqlite.py, audit/postgres/store.py) reads the chain head and the
tree, chains and inserts the records in one transaction, signs one tree head and commits once;
only then are the futures resolved, so a decision is never returned before its record is
durable. A caller on an event loop (`append_async`) gets an asyncio future instead: the
writer resolves all of a batch's such futures with one wake-up of their loop, not one each.
If the commit fails, every record of the batch fails with AuditUnavailable and the chain head
is left where it was. The SQL is shared (audit/dialect.py); a backend gives its
connections, its locks and its transaction start.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import fcntl
import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from miaopi_server.audit import merkle
from miaopi_server.audit.canonical import GENESIS_HASH, sha256_hex
from miaopi_server.audit.dialect import Connection, insert_rows
from miaopi_server.audit.record import (
    PendingEvent,
    PendingRecord,
    StoredRecord,
    canonical_body,
    chained_record,
    column_time,
    fixed_time,
)
from miaopi_server.audit.seal import Sealer
from miaopi_server.audit.sqlite_alerts import alerts_after, latest_alerts_cursor
from miaopi_server.audit.sqlite_casework import (
    apply_transition,
    get_task,
    insert_tasks,
    list_tasks,
    pending_supplements,
    period_facts,
    task_history,
    task_row,
    tasks_not_final,
)
from miaopi_server.audit.sqlite_escalation import alert_seq_of
from miaopi_server.audit.sqlite_outbox import (
    Delivery,
    mark_delivered,
    mark_failed,
    take_due,
    undelivered,
)
from miaopi_server.audit.sqlite_rulesets import archive_set, find_set, is_archived
from miaopi_server.audit.sqlite_tree import (
    CachedNodes,
    TreeGrowth,
    frontier_of,
    has_tree,
    head_covering,
    head_of_size,
    inclusion_proof_hex,
    insert_head,
    latest_head,
)
from miaopi_server.audit.sqlite_verify import check_records
from miaopi_server.audit.store import DuplicateRequest, ListFilter, PublishedSet, Verification
from miaopi_server.audit.transition import PendingTransition
from miaopi_server.audit.treehead import TreeHead, sign_head
from miaopi_server.audit.witness import WitnessFile
from miaopi_server.casework.alerts import Alert
from miaopi_server.casework.kpi import CaseFacts
from miaopi_server.casework.model import Task
from miaopi_server.clock import utc_now
from miaopi_server.errors import AuditTrailDiverged, AuditUnavailable, MiaopiError

__all__ = ["ChainStore"]

Pending = PendingRecord | PendingEvent | PendingTransition


class _LoopWaiter:
    """The writer's side of an `append_async` future: it collects the outcome, and the
    batch's outcomes reach their loop together (`_deliver`). Like asyncio.shield, a caller
    that stops waiting (its RPC cancelled) does not withdraw the record: it is written all
    the same, and its outcome dropped."""

    __slots__ = ("future", "loop", "outbox")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[StoredRecord],
        outbox: list[tuple[_LoopWaiter, StoredRecord | None, BaseException | None]],
    ):
        self.loop, self.future, self.outbox = loop, future, outbox

    def set_running_or_notify_cancel(self) -> bool:
        return True

    def set_result(self, result: StoredRecord) -> None:
        self.outbox.append((self, result, None))

    def set_exception(self, exc: BaseException) -> None:
        self.outbox.append((self, None, exc))


def _settle(outcomes: list[tuple[_LoopWaiter, StoredRecord | None, BaseException | None]]) -> None:
    """On the loop: resolve the futures still waiting (one cancelled meanwhile is skipped)."""
    for waiter, result, exc in outcomes:
        fut = waiter.future
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)  # type: ignore[arg-type]  # set with exc None


Waiter = Future[StoredRecord] | _LoopWaiter
MAX_BATCH = 512
_INSERT_RECORD = (
    "INSERT INTO records (seq, decision_id, request_id, item_code, outcome, window_id,"
    " decided_at, case_digest, body, hash, key_id, signature)"
)
RULESET_PUBLISHED = "ruleset_published"
_COLUMNS = (
    "r.seq, r.decision_id, r.request_id, r.case_digest, r.body, c.case_json, r.hash, r.key_id,"
    " r.signature FROM records r LEFT JOIN cases c ON c.seq = r.seq"
)  # a record without its case row: the case was purged


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
        case=json.loads(case_json) if case_json is not None else {},
        case_purged=case_json is None,
        record_hash=h,
        key_id=key_id,
        signature=bytes(sig),
        _parsed=body,
    )


def with_proof(
    conn: Connection,
    record: StoredRecord,
    nodes: CachedNodes | None = None,
    memos: dict[int, merkle.Memo] | None = None,
) -> StoredRecord:
    """The record with the head signed when it was added and its inclusion proof: the
    receipt it was first given."""
    head = head_covering(conn, record.seq)
    if head is None:
        return record
    memo = memos.setdefault(head.tree_size, {}) if memos is not None else None
    proof = inclusion_proof_hex(record.seq, head.tree_size, nodes or CachedNodes(conn), memo)
    return replace(record, tree_head=head, inclusion_proof=proof)


def now_ms() -> int:
    return int(utc_now().timestamp() * 1000)


class _OnRecord(Exception):
    """A publication the trail holds already (PendingEvent.unless): nothing recorded."""


def _published(published: PublishedSet, details: dict[str, Any]) -> dict[str, Any]:
    """The body of a "ruleset_published" event (its files are archived beside it)."""
    return {
        **details,
        "type": RULESET_PUBLISHED,
        "set_digest": published.set_digest,
        "versions": published.versions,
        "files": len(published.files),
    }


class ChainStore:
    """The store less its database: subclasses open connections (`_writer` for the writer's
    transaction, `_read` for readers), lock, begin, and close."""

    _writer: Connection
    SHARED = False  # a trail several nodes keep, each with its own witness

    def __init__(
        self,
        where: str,
        witness_file: Path,
        lock_file: Path,
        sealer: Sealer,
        busy_timeout_ms: int,
        previous_keys: dict[str, bytes] | None,
        reanchor: str,
        node_id: str,
    ):
        """`where` names the trail in messages (never a password); the witness and the
        writers' lock file are this node's, under its state directory."""
        self.where = where
        self.sealer = sealer
        self.witness_file = witness_file
        self.node_id = node_id
        self.reanchored: StoredRecord | None = None
        self.joined: TreeHead | None = None  # the head a node joining a shared trail took
        self._reanchor_reason = reanchor
        self._skip_witness = False
        # (size, root, frontier) of the tree this process last committed: the next batch
        # starts from it when no other process appended meanwhile.
        self._grown: tuple[int, str, dict[tuple[int, int], bytes]] | None = None
        # (last seq, its hash, the head signed with it) as this process last committed them:
        # read back only when the database says another connection committed since.
        self._tail: tuple[int, str, TreeHead] | None = None
        self.batches = 0
        self.records_written = 0
        # Told (records, seconds) after every batch committed: the metrics' audit histograms.
        self.on_batch: Callable[[int, float], None] | None = None
        # Public keys of rotated-out sealing keys: records they sealed still verify.
        self.keys = {**(previous_keys or {}), sealer.key_id: sealer.public_raw}
        witness_file.parent.mkdir(parents=True, exist_ok=True)
        # Writers in several processes (`--workers`) queue on this lock file: it polls in
        # steps of at most 2 ms, and the kernel releases it when its holder dies.
        self._lock_fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._witness = WitnessFile(witness_file)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._busy_timeout_s = busy_timeout_ms / 1000
        self._depth = 0  # how many times this thread holds the writers' lock

    def _start_writer(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Pending, Waiter] | None] = queue.SimpleQueue()
        # Outcomes for `append_async` callers, gathered by the writer while a batch is written.
        self._outcomes: list[tuple[_LoopWaiter, StoredRecord | None, BaseException | None]] = []
        self._thread = threading.Thread(target=self._write_loop, name="audit-writer", daemon=True)
        self._thread.start()

    def _stop_writer(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _release_files(self) -> None:
        os.close(self._lock_fd)
        self._witness.close()

    # -- what a backend provides
    def _begin_write(self) -> None:
        """Start the writer's transaction (the writers' lock is held)."""
        self._writer.execute("BEGIN")

    def _rollback(self) -> None:
        with suppress(Exception):
            self._writer.execute("ROLLBACK")

    def _unlock_writers(self) -> None:
        self._depth -= 1
        if not self._depth:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _before_purge(self) -> None:
        """Anything the database needs so that purged cases do not linger in its files."""

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        raise NotImplementedError
        yield  # pragma: no cover

    @contextmanager
    def _outbox(self) -> Iterator[Connection]:
        """A connection in autocommit mode for the webhook deliverer's thread, which takes
        its leases in write transactions of its own (audit/sqlite_outbox.py)."""
        raise NotImplementedError
        yield  # pragma: no cover

    def raise_alerts(self, now: dt.datetime, due_soon_fraction: float) -> builtins.list[Alert]:
        """Store the alerts the tasks call for as of `now`; those new to the store."""
        raise NotImplementedError

    def verify(self, from_seq: int = 1, to_seq: int = 0) -> Verification:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _open_trail(self) -> None:
        """At start, under the writers' lock: bring unsealed records into the tree and
        compare the trail with its witness (re-anchoring it if asked to)."""
        if has_tree(self._writer):
            first_heads = latest_head(self._writer) is None
            self._adopt_sealed_records()
            self._check_witness(first_heads)

    def _adopt_sealed_records(self) -> None:
        """Bring records the tree does not cover yet into it and sign a head over them: the
        records of a database made before the tree, each sealed on its own (their seals are
        checked first). Anything else beyond the last head, or a head beyond the records,
        is a trail that diverged from what this node signed: refused."""
        last = self._writer.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()[0]
        head = latest_head(self._writer)
        size = head.tree_size if head is not None else 0
        if size > last:
            raise AuditTrailDiverged(
                f"audit trail {self.where} holds {last} records but a signed tree head covers "
                f"{size}: records were removed (restore procedure: docs/AUDIT.md)"
            )
        if size == last:
            return
        check = check_records(self._writer, self.keys, size + 1, last, size)
        if not check.ok:
            raise AuditTrailDiverged(
                f"audit trail {self.where}: record {check.first_bad_seq}, after the last signed "
                f"tree head, does not verify ({check.reason})"
            )
        self._begin_write()
        try:
            tree = TreeGrowth(self._writer, size)
            for (h,) in self._writer.execute(
                "SELECT hash FROM records WHERE seq > ? ORDER BY seq", (size,)
            ).fetchall():
                tree.add(h)
            self._seal_tree(tree)
            self._writer.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _check_witness(self, first_heads: bool) -> None:
        """Compare the trail with its witness at start; re-anchor it if asked to."""
        head = latest_head(self._writer)
        try:
            witness = self._witness.read()
        except ValueError as exc:
            witness, problem = None, str(exc)
        else:
            problem = self._witness_problem(witness, head, CachedNodes(self._writer))
            if witness is None and head is not None and not first_heads:
                problem = self._joining(head)
        if problem and self._reanchor_reason:
            self._reanchor(witness, head, problem)
        elif problem:
            raise AuditTrailDiverged(
                f"{problem}; the node does not serve it. If this database was restored from a "
                "backup on purpose, re-anchor: miaopi-server --reanchor-witness REASON "
                "(docs/AUDIT.md)"
            )
        elif witness is None and head is not None:  # a new or just migrated trail
            self._witness.write(head)

    def _joining(self, head: TreeHead) -> str:
        """Why a node without a witness may not start on a trail with heads; "" when it joins.
        On one node's trail the witness was lost. A shared trail (SHARED) is joined by a new
        node: it takes the latest head, signed by a key it was given, as its witness."""
        if not self.SHARED:
            return (
                f"witness {self.witness_file} is missing, but the audit trail has signed "
                f"tree heads (up to {head.tree_size} records)"
            )
        if not head.verifies(self.keys):
            return (
                f"audit trail {self.where}: its latest tree head ({head.tree_size} records) is "
                "not signed by a key this node was given"
            )
        self.joined = head
        return ""

    def _witness_problem(
        self,
        witness: TreeHead | None,
        head: TreeHead | None,
        nodes: merkle.NodeGetter,
        signature: bool = True,
    ) -> str:
        """Why the trail (last head `head`) contradicts `witness`; "" when it extends it."""
        if witness is None:
            return ""
        # A witness sealed by a key this node was not given (a rotation without
        # --previous-seal-key) is still compared; verification names the missing key.
        if signature and witness.key_id in self.keys and not witness.verifies(self.keys):
            return f"witness {self.witness_file} has a bad signature"
        size = head.tree_size if head is not None else 0
        if size < witness.tree_size:
            return (
                f"audit trail {self.where} is behind its witness: {witness.tree_size} records "
                f"were signed, the database holds {size}"
            )
        if head is not None and size == witness.tree_size:
            same = head.root_hash == witness.root_hash
        else:
            if isinstance(nodes, CachedNodes):  # other nodes appended since: one read
                nodes.prefetch(frontier_of(witness.tree_size))
            try:
                same = merkle.subtree(0, witness.tree_size, nodes).hex() == witness.root_hash
            except LookupError:
                same = False
        if not same:
            return (
                f"audit trail {self.where} forked from its witness: its first "
                f"{witness.tree_size} records are not the ones signed"
            )
        return ""

    def _reanchor(self, witness: TreeHead | None, head: TreeHead | None, problem: str) -> None:
        """Record that an administrator re-anchored the witness to this trail (with what it
        abandons), then sign the new head and write it as the witness."""
        event = PendingEvent(
            event_id=f"event-{uuid.uuid4()}",
            at=fixed_time(utc_now()),
            node_id=self.node_id,
            details={
                "type": "witness_reanchored",
                "reason": self._reanchor_reason,
                "problem": problem,
                "abandoned_witness": witness.to_json() if witness is not None else None,
                "database_head": head.to_json() if head is not None else None,
            },
        )
        fut: Future[StoredRecord] = Future()
        self._skip_witness = True
        try:
            self._write_batch([(event, fut)])
        finally:
            self._skip_witness = False
        self.reanchored = fut.result()

    # -- writing
    def append(self, pending: Pending) -> Future[StoredRecord]:
        """Queue a record; the future resolves once it is committed (or fails)."""
        fut: Future[StoredRecord] = Future()
        self._queue.put((pending, fut))
        return fut

    def append_async(self, pending: Pending) -> asyncio.Future[StoredRecord]:
        """`append` for a caller on the running event loop: an asyncio future, resolved
        (with the rest of its batch, in one call on the loop) once the record is committed.
        Cancelling it does not withdraw the record."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[StoredRecord] = loop.create_future()
        self._queue.put((pending, _LoopWaiter(loop, fut, self._outcomes)))
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
            try:
                self._write_batch(batch)
            finally:
                self._deliver()

    def _deliver(self) -> None:
        """Hand the batch's `append_async` outcomes to their loops: one call per loop."""
        if not self._outcomes:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for outcome in self._outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        self._outcomes.clear()
        for loop, outcomes in by_loop.items():
            with suppress(RuntimeError):  # the loop closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, outcomes)

    def _write_batch(self, batch: list[tuple[Pending, Waiter]]) -> None:
        # A caller that gave up (its RPC was cancelled) is skipped; once running, a future can
        # no longer be cancelled, so resolving it below cannot fail and kill this thread.
        batch = [(p, f) for p, f in batch if f.set_running_or_notify_cancel()]
        if not batch:
            return
        began = time.perf_counter()
        # What each acknowledged record is made of: its StoredRecord is built once, with the
        # head and proof, after the commit (an event's is made when it is inserted).
        written: list[tuple[Waiter, int, str, str, str, Pending | StoredRecord]] = []
        repeats: list[tuple[Waiter, StoredRecord | tuple[str, str]]] = []
        refused: list[tuple[Waiter, Exception]] = []  # transitions not allowed
        in_batch: set[tuple[str, str]] = set()
        locked = False
        try:
            self._lock_writers()
            locked = True
            self._begin_write()
            # The head is read under the write lock: several server processes may append to
            # one database (`--workers`), and the chain and the tree run through all of them
            # in seq order.
            seq, prev, tree = self._chain_head()
            records: list[tuple[Any, ...]] = []
            cases: list[tuple[int, str]] = []
            tasks: list[tuple[object, ...]] = []  # opened by the decisions, same commit

            def insert() -> None:  # one statement for each table, not one per record
                insert_rows(self._writer, _INSERT_RECORD, 12, records)
                insert_rows(self._writer, "INSERT INTO cases (seq, case_json)", 2, cases)
                if tasks:
                    insert_tasks(self._writer, tasks)
                records.clear()
                cases.clear()
                tasks.clear()

            for pending, fut in batch:
                if isinstance(pending, PendingEvent):
                    insert()  # a purge sees every case recorded before it
                    if pending.unless and self._on_record(pending):
                        refused.append((fut, _OnRecord()))
                        continue
                    seq += 1
                    event = self._insert_event(seq, prev, pending)
                    tree.add(event.record_hash)
                    written.append((fut, seq, prev, event.record_hash, event.body_json, event))
                    prev = event.record_hash
                    continue
                if isinstance(pending, PendingTransition):
                    insert()  # the task it moves may have been opened in this batch
                    try:
                        moved = apply_transition(
                            self._writer, seq + 1, prev, pending, self.sealer.key_id
                        )
                    except MiaopiError as exc:  # refused: nothing was written for it
                        refused.append((fut, exc))
                        continue
                    seq += 1
                    tree.add(moved.record_hash)
                    written.append((fut, seq, prev, moved.record_hash, moved.body_json, moved))
                    prev = moved.record_hash
                    continue
                key = (pending.window_id, pending.request_id)
                if pending.request_id:
                    if key in in_batch:
                        repeats.append((fut, key))
                        continue
                    existing = self._by_request(self._writer, *key)
                    if existing is not None:
                        repeats.append((fut, existing))
                        continue
                seq += 1
                body_bytes = canonical_body(seq, prev, pending)
                h = sha256_hex(body_bytes)
                body_json = body_bytes.decode()
                records.append(
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
                        h,
                        self.sealer.key_id,
                        b"",  # sealed by the tree head below, with the whole batch
                    )
                )
                cases.append((seq, pending.case_json.decode()))
                if pending.task is not None:
                    tasks.append(task_row(seq, pending.task, pending.task_json))
                tree.add(h)
                if pending.request_id:
                    in_batch.add(key)
                written.append((fut, seq, prev, h, body_json, pending))
                prev = h
            insert()
            head = self._seal_tree(tree) if written else None
            self._writer.execute("COMMIT")
            if head is not None:  # still under the lock: the witness never goes backwards
                self._witness.write(head)
                self._grown = (head.tree_size, head.root_hash, tree.frontier())
                self._tail = (seq, prev, head)
        except Exception as exc:  # the batch is not durable: none of it may be acknowledged
            self._tail = None  # read the head back next time
            self._rollback()
            failure = AuditUnavailable(f"audit trail not writable: {exc}")
            for _, fut in batch:
                fut.set_exception(failure)
            return
        finally:
            if locked:
                self._unlock_writers()
        self.batches += 1
        self.records_written += len(written)
        took = time.perf_counter() - began
        # Proofs come from the nodes the batch computed (no reads), outside the lock.
        by_request: dict[tuple[str, str], StoredRecord] = {}
        memo: merkle.Memo = {}  # the batch's proofs share their right edges
        for fut, seq, prev, h, body_json, source in written:
            assert head is not None
            proof = inclusion_proof_hex(seq, head.tree_size, tree.nodes, memo)
            if isinstance(source, StoredRecord):  # an event or transition, made when inserted
                done = replace(source, tree_head=head, inclusion_proof=proof)
            else:
                assert isinstance(source, PendingRecord)
                done = StoredRecord(
                    seq=seq,
                    decision_id=source.decision_id,
                    request_id=source.request_id,
                    case_digest=source.case_digest,
                    prev_hash=prev,
                    node_id=source.node_id,
                    window=source.window,
                    body_json=body_json,
                    case=source.case,
                    record_hash=h,
                    key_id=self.sealer.key_id,
                    signature=b"",
                    tree_head=head,
                    inclusion_proof=proof,
                )
            if done.request_id:
                by_request[(done.window.get("window_id", ""), done.request_id)] = done
            fut.set_result(done)
        for fut, problem in refused:
            fut.set_exception(problem)
        for fut, first in repeats:  # the record on file, or the one this batch added
            fut.set_exception(
                DuplicateRequest(by_request[first] if isinstance(first, tuple) else first)
            )
        if self.on_batch is not None and written:
            with suppress(Exception):  # an observer never stops the writer
                self.on_batch(len(written), took)

    def _apply(self, event: PendingEvent, last_seq: int) -> dict[str, Any]:
        """Do what the event records, in its transaction; what it did goes into its body."""
        if event.details.get("type") == RULESET_PUBLISHED:
            return {"archived": archive_set(self._writer, event.attachment, event.at)}
        if event.details.get("type") != "purge":
            return {}
        self._before_purge()
        covered = (event.details["before"], last_seq)
        purged = self._writer.execute(
            "DELETE FROM cases WHERE seq IN (SELECT seq FROM records WHERE kind = 'decision'"
            " AND decided_at < ? AND seq <= ?)",
            covered,
        ).rowcount
        # A rating's comment is the citizen's words: erased with the case it rates.
        comments = self._writer.execute(
            "DELETE FROM rating_comments WHERE seq <= ? AND decision_id IN (SELECT decision_id"
            " FROM records WHERE kind = 'decision' AND decided_at < ? AND seq <= ?)",
            (last_seq, *covered),
        ).rowcount
        return {"through_seq": last_seq, "purged": purged, "comments_purged": comments}

    def purge(self, before: str, by: str) -> StoredRecord:
        """Erase the cases of every decision made before `before` (fixed_time) and record
        that in the chain: a purge event {"before", "through_seq", "purged", "by",
        "comments_purged"} (the rating comments of those cases are erased with them)."""
        event = PendingEvent(
            event_id=f"event-{uuid.uuid4()}",
            at=fixed_time(utc_now()),
            node_id=self.node_id,
            details={"type": "purge", "before": before, "by": by},
        )
        return self.append(event).result()

    def record_event(self, details: dict[str, Any], attachment: Any = None) -> StoredRecord:
        """Append an event of the trail ({"type": ..., ...}) and wait until it is durable."""
        return self.append(self._event(details, attachment)).result()

    def _event(
        self,
        details: dict[str, Any],
        attachment: Any = None,
        unless: Literal["", "archived", "act"] = "",
    ) -> PendingEvent:
        return PendingEvent(
            event_id=f"event-{uuid.uuid4()}",
            at=fixed_time(utc_now()),
            node_id=self.node_id,
            details=details,
            attachment=attachment,
            unless=unless,
        )

    def publish(self, published: PublishedSet, details: dict[str, Any]) -> StoredRecord:
        """Record a "ruleset_published" event (`details`: who or what published, ...) with the
        set's digest and versions, archiving its files in the same commit unless that digest is
        archived already (the body's "archived" says which)."""
        return self.append(self._event(_published(published, details), published)).result()

    def publish_new(self, published: PublishedSet, details: dict[str, Any]) -> StoredRecord | None:
        """`publish` unless the set is archived already (None then), checked in the writer's
        transaction: of several processes or nodes starting on one trail with the same set,
        one records it."""
        return self._append_unless(
            self._event(_published(published, details), published, unless="archived")
        )

    def publish_act(
        self, published: PublishedSet, details: dict[str, Any], act: str
    ) -> StoredRecord | None:
        """`publish` as `act`'s event for this set unless the trail holds it (None then),
        checked in the writer's transaction: the `--workers` processes that all carry out one
        reload record it once. The event's id is made of the act and the set digest, so an
        act some worker carried out with another set (the files changed meanwhile) records
        that set too, once."""
        event_id = f"event-{uuid.uuid5(uuid.UUID(act), published.set_digest)}"
        event = self._event(_published(published, details), published, unless="act")
        return self._append_unless(replace(event, event_id=event_id))

    def _append_unless(self, event: PendingEvent) -> StoredRecord | None:
        try:
            return self.append(event).result()
        except _OnRecord:
            return None

    def _on_record(self, event: PendingEvent) -> bool:
        """In the writer's transaction: whether the trail holds `event`'s publication as its
        `unless` says (its set archived, or the event of its act and set)."""
        if event.unless == "archived":
            return is_archived(self._writer, event.attachment.set_digest)
        row = self._writer.execute(
            "SELECT 1 FROM records WHERE decision_id = ?", (event.event_id,)
        ).fetchone()
        return row is not None

    def published_set(self, digest: str) -> PublishedSet | None:
        """The archived set of this set digest, or holding an item version of this digest."""
        with self._read() as conn:
            return find_set(conn, digest)

    def _chain_head(self) -> tuple[int, str, TreeGrowth]:
        """(last seq, its hash, the tree over every record) inside the write transaction.
        A trail and tree that disagree (records removed or added behind the server's back)
        fail the batch: nothing is acknowledged on a trail that contradicts its heads."""
        tail = self._tail if not self._changed_by_others() else None
        head: TreeHead | None
        if tail is not None:  # the trail is as this process left it: nothing to read back
            seq, prev, head = tail
            size = seq
        else:
            last = "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1"
            seq, prev = self._writer.execute(last).fetchone() or (0, GENESIS_HASH)
            head = latest_head(self._writer)
            size = head.tree_size if head is not None else 0
        if size != seq:
            raise AuditTrailDiverged(
                f"audit trail {self.where} holds {seq} records but its last signed tree head "
                f"covers {size}"
            )
        grown = self._grown
        if grown is not None and head is not None and grown[:2] == (size, head.root_hash):
            tree = TreeGrowth(self._writer, seq, grown[2])
        else:
            tree = TreeGrowth(self._writer, seq)
        if not self._skip_witness:
            try:  # its signature was checked at start; the lock's holders wrote it since
                problem = self._witness_problem(self._witness.read(), head, tree.nodes, False)
            except ValueError as exc:
                problem = str(exc)
            if problem:
                raise AuditTrailDiverged(problem)
        # What was read back is the trail now, even if this batch writes nothing to it.
        self._tail = (seq, prev, head) if head is not None else None
        return seq, prev, tree

    def _insert_event(self, seq: int, prev: str, event: PendingEvent) -> StoredRecord:
        outcome = self._apply(event, seq - 1)
        body_bytes = event.canonical_body(seq, prev, outcome)
        h = sha256_hex(body_bytes)
        self._writer.execute(
            "INSERT INTO records (seq, decision_id, request_id, item_code, outcome, window_id,"
            " decided_at, case_digest, body, hash, key_id, signature, kind)"
            " VALUES (?, ?, NULL, '', '', '', ?, '', ?, ?, ?, ?, 'event')",
            (seq, event.event_id, column_time(event.at), body_bytes.decode(), h,
             self.sealer.key_id, b""),
        )  # fmt: skip
        return chained_record(
            seq, event.event_id, prev, event.node_id, body_bytes.decode(), h, self.sealer.key_id
        )

    def _seal_tree(self, tree: TreeGrowth) -> TreeHead:
        """Sign the grown tree's head and store it with the new nodes (one signature for
        the whole batch)."""
        head = sign_head(self.sealer, tree.size, tree.root(), now_ms())
        insert_head(self._writer, head)
        tree.save()
        return head

    def _changed_by_others(self) -> bool:
        """Inside the write transaction: may another connection have committed since this
        one's last batch? A backend that cannot tell says yes (the head is then read back)."""
        return True

    def _lock_writers(self) -> None:
        """Take the writers' lock file, or raise once the busy timeout has passed (a frozen
        writer in another process must not stop this one failing closed). A holder keeps it
        for one commit, so the wait starts with short polls. Re-entrant (a re-anchor at
        start writes its event while the start holds the lock)."""
        if self._depth:
            self._depth += 1
            return
        deadline = time.monotonic() + self._busy_timeout_s
        pause = 0.0002
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._depth = 1
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise AuditUnavailable("audit writers' lock busy beyond the timeout") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.002)

    @staticmethod
    def _by_request(conn: Connection, window_id: str, request_id: str) -> StoredRecord | None:
        row = conn.execute(
            f"SELECT {_COLUMNS} WHERE window_id = ? AND request_id = ?",
            (window_id, request_id),
        ).fetchone()
        return with_proof(conn, _row(row)) if row else None

    # -- reading
    def find_request(self, window_id: str, request_id: str) -> StoredRecord | None:
        with self._read() as conn:
            return self._by_request(conn, window_id, request_id)

    def get(self, decision_id: str) -> StoredRecord | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} WHERE decision_id = ? AND kind = 'decision'",
                (decision_id,),
            ).fetchone()
            return with_proof(conn, _row(row)) if row else None

    def list(self, f: ListFilter, limit: int, before_seq: int = 0) -> list[StoredRecord]:
        """Newest first; `before_seq` continues a previous page."""
        where: list[str] = ["kind = 'decision'"]  # not the trail's own events
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
            where.append("r.seq < ?")
            args.append(before_seq)
        sql = f"SELECT {_COLUMNS} WHERE " + " AND ".join(where)
        sql += " ORDER BY r.seq DESC LIMIT ?"
        with self._read() as conn:
            rows = conn.execute(sql, (*args, limit)).fetchall()
            nodes = CachedNodes(conn)  # a page's proofs share most of their nodes
            memos: dict[int, merkle.Memo] = {}  # and, per tree size, their right edges
            return [with_proof(conn, _row(r), nodes, memos) for r in rows]

    # -- casework
    def transition(self, pending: PendingTransition) -> Future[StoredRecord]:
        """Queue a transition; it is applied and recorded in a write transaction (under the
        writers' lock), so of two processes making the same move only one succeeds."""
        return self.append(pending)

    def task(self, decision_id: str) -> tuple[Task, int] | None:
        with self._read() as conn:
            return get_task(conn, decision_id)

    def history(self, decision_id: str, after_seq: int) -> builtins.list[dict[str, Any]]:
        """The transitions of the decision's task (recorded after `after_seq`, its seq)."""
        with self._read() as conn:
            return task_history(conn, decision_id, after_seq)

    def tasks(
        self,
        departments: builtins.list[str],
        jurisdiction: str,
        states: builtins.list[str],
        limit: int,
        after: tuple[str, str] = ("", ""),
        escalated_only: bool = False,
        item_code: str = "",
    ) -> builtins.list[Task]:
        with self._read() as conn:
            return list_tasks(
                conn, departments, jurisdiction, states, limit, after, escalated_only, item_code
            )

    def pending_supplements(self) -> builtins.list[Task]:
        with self._read() as conn:
            return pending_supplements(conn)

    def escalation_alert_seq(self, transition_id: str) -> int:
        with self._read() as conn:
            return alert_seq_of(conn, transition_id)

    # -- the webhook's outbox (audit/sqlite_outbox.py), on the backend's `_outbox` connection
    def take_deliveries(
        self, owner: str, now: dt.datetime, lease: dt.timedelta, limit: int
    ) -> builtins.list[Delivery]:
        with self._outbox() as conn:
            return take_due(conn, owner, fixed_time(now), fixed_time(now + lease), limit)

    def delivered(self, delivery_id: int, owner: str, now: dt.datetime) -> bool:
        with self._outbox() as conn:
            return mark_delivered(conn, delivery_id, owner, fixed_time(now))

    def delivery_failed(
        self, delivery_id: int, owner: str, next_at: dt.datetime, error: str
    ) -> bool:
        with self._outbox() as conn:
            return mark_failed(conn, delivery_id, owner, fixed_time(next_at), error)

    def undelivered(self) -> int:
        with self._outbox() as conn:
            return undelivered(conn)

    def open_tasks(self) -> builtins.list[Task]:
        """Every task not final (for the metrics' gauges)."""
        with self._read() as conn:
            return tasks_not_final(conn)

    def period_cases(
        self, start: str, end: str, closed_at_once: Callable[[StoredRecord], Task]
    ) -> builtins.list[CaseFacts]:
        """Every case opened in [start, end) (fixed_time values) with what KPIs need; a case
        closed at once is made from its decision record by `closed_at_once`."""
        with self._read() as conn:
            instant = [
                closed_at_once(_row(r))
                for r in conn.execute(
                    f"SELECT {_COLUMNS} WHERE r.kind = 'decision' AND r.decided_at >= ?"
                    " AND r.decided_at < ?"
                    " AND r.decision_id NOT IN (SELECT decision_id FROM tasks)",
                    (start, end),
                )
            ]
            return period_facts(conn, start, end, instant)

    # -- alerts
    def alerts_after(self, after_seq: int, jurisdiction: str, limit: int) -> builtins.list[Alert]:
        with self._read() as conn:
            return alerts_after(conn, after_seq, jurisdiction, limit)

    def latest_alerts_cursor(self, jurisdiction: str, count: int) -> int:
        with self._read() as conn:
            return latest_alerts_cursor(conn, jurisdiction, count)

    def latest_head(self) -> TreeHead | None:
        with self._read() as conn:
            return latest_head(conn)

    def consistency(self, first: int, second: int = 0) -> tuple[TreeHead, builtins.list[bytes]]:
        """The signed head of `second` records (0: the latest) and the RFC 9162 proof that
        the tree of the first `first` records is its prefix. Raises ValueError when there is
        no such head or first is not in 1..second."""
        with self._read() as conn:
            head = head_of_size(conn, second) if second else latest_head(conn)
            if head is None:
                raise ValueError(f"no signed tree head of {second} records")
            return head, merkle.consistency_proof(first, head.tree_size, CachedNodes(conn))
