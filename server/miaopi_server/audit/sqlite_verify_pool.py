"""verify_database on every core: a large SQLite trail checked by worker processes, with
the same result as one process (the same first failing seq, the same reason and counts).

Each worker opens the database itself and checks one range of records (its first prev_hash
is the row before it, which the range before checks) and the signatures of the tree heads
whose sizes fall in that range; meanwhile this process makes the tree pass (every node, every
head's root, the witness) without the signatures. The results are merged in trail order:
ranges one after the other as one pass would have met them, then the first bad signature
counts only if the tree pass reached its head before the problem it found, if any.

Workers are forked before this process opens the database for its own pass (SQLite's
connections and locks must not cross a fork), then given their ranges through a pipe; they
read in snapshots of their own, which agree with this one's on every record up to its last:
the trail only grows (a purge removes cases, in the transaction that records it).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from miaopi_server.audit.sqlite_tree import has_tree, latest_head
from miaopi_server.audit.sqlite_verify import (
    RangeCheck,
    check_range,
    connect_readonly,
    first_bad_head,
    tree_pass,
)
from miaopi_server.audit.store import Verification
from miaopi_server.audit.treehead import TreeHead

# Below this many records a second process costs more than it saves (fork, a connection,
# the merge): about 0.1 s of a one-process check.
PARALLEL_MIN_RECORDS = 5_000
MAX_WORKERS = 8


def worker_count(records: int) -> int:
    """How many worker processes a check of `records` records uses (0: none). None from a
    process running threads: a forked child could inherit a lock another thread holds."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if not hasattr(os, "fork") or records < PARALLEL_MIN_RECORDS or (cores or 1) < 2:
        return 0
    if threading.active_count() > 1:
        return 0
    return min(cores or 1, MAX_WORKERS, records // PARALLEL_MIN_RECORDS)


def verify_in_workers(
    path: Path,
    keys: dict[str, bytes],
    from_seq: int,
    to_seq: int,
    witness: TreeHead | None,
    workers: int,
) -> Verification:
    """verify_database(path, keys, from_seq, to_seq, witness) with `workers` processes."""
    children: list[_Worker] = []
    try:
        for _ in range(workers):
            children.append(_Worker(path, keys, children))
        conn = connect_readonly(path)
        try:
            conn.execute("BEGIN")  # this process's snapshot: the trail as it is checked
            treed = has_tree(conn)
            head = latest_head(conn) if treed else None
            covered_to = head.tree_size if head else 0
            (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()
            first = max(from_seq, 1)
            end = min(to_seq, last) if to_seq else last
            ranges = _split(first, end, workers)
            # Heads over the whole trail (the tree is checked whole, whatever the range).
            head_ranges = _split(1, last, workers) if treed else [(1, 0)] * workers
            for child, records, heads in zip(children, ranges, head_ranges, strict=True):
                child.send((*records, covered_to, *heads))
            tree = tree_pass(conn, keys, witness, signatures=False) if treed or witness else None
            checks = [child.receive() for child in children]
            result = _merged_records(conn, [c for c, _ in checks], ranges, end)
        finally:
            conn.close()
    finally:
        for child in children:
            child.close()
    if not result.ok or tree is None:
        return result
    problem, right_through = tree
    bad_head = min((b for _, b in checks if b is not None), default=None)
    if bad_head is not None and bad_head <= right_through:
        problem = (bad_head, f"bad signature on tree head {bad_head}")
    if problem is not None:
        return Verification(False, result.checked, problem[0], problem[1])
    return result


def _split(first: int, end: int, parts: int) -> list[tuple[int, int]]:
    """`parts` consecutive ranges covering first..end (empty ones when there are fewer)."""
    size = max(end - first + 1, 0)
    bounds = [first + size * k // parts for k in range(parts + 1)]
    return [(bounds[k], bounds[k + 1] - 1) for k in range(parts)]


def _merged_records(
    conn: Any, checks: list[RangeCheck], ranges: list[tuple[int, int]], end: int
) -> Verification:
    """The Verification one pass over the ranges, in order, would have returned."""
    checked = purged = 0
    expected = ranges[0][0]
    for check, (lo, _) in zip(checks, ranges, strict=True):
        if expected != lo:  # the range before stopped short of its end
            (later,) = conn.execute(
                "SELECT MIN(seq) FROM records WHERE seq >= ? AND seq <= ?", (expected, end)
            ).fetchone()
            if later is None:  # no record after it: where one pass ends too
                break
            return Verification(False, checked, expected, "gap")
        v = check.verification
        if not v.ok:
            counted = purged + v.purged if check.counts_purged else 0
            return replace(v, checked=checked + v.checked, purged=counted)
        checked, purged, expected = checked + v.checked, purged + v.purged, check.next_seq
    return Verification(True, checked, purged=purged)


class _Worker:
    """A forked process that checks one range; job and result pickled through pipes."""

    def __init__(self, path: Path, keys: dict[str, bytes], others: list[_Worker]) -> None:
        job_r, self._job_w = os.pipe()
        self._result_r, result_w = os.pipe()
        self._received = False
        self.pid = os.fork()
        if self.pid == 0:  # the worker: the other workers' pipe ends are not its own
            for fd in [self._job_w, self._result_r, *(f for o in others for f in o.fds())]:
                if fd >= 0:
                    os.close(fd)
            _serve(path, keys, job_r, result_w)  # never returns
        os.close(job_r)
        os.close(result_w)

    def fds(self) -> tuple[int, int]:
        return self._job_w, self._result_r

    def send(self, job: tuple[int, int, int, int, int]) -> None:
        _write(self._job_w, job)
        os.close(self._job_w)
        self._job_w = -1

    def receive(self) -> tuple[RangeCheck, int | None]:
        data = _read_all(self._result_r)
        self._received = True
        if not data:
            raise RuntimeError(f"audit verify worker {self.pid} ended without a result")
        kind, value = pickle.loads(data)
        if kind == "error":
            raise value
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        for fd in self.fds():
            if fd >= 0:
                os.close(fd)
        self._job_w = self._result_r = -1
        if not self._received:  # this process failed first: the worker's check is not needed
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


def _serve(path: Path, keys: dict[str, bytes], job_r: int, result_w: int) -> None:
    code = 0
    try:
        data = _read_all(job_r)
        if data:  # nothing: the parent gave up before sending the job
            lo, hi, covered_to, heads_lo, heads_hi = pickle.loads(data)
            conn = connect_readonly(path)
            try:
                conn.execute("BEGIN")
                check = check_range(conn, keys, lo, hi, covered_to)
                bad = None  # no heads to check: a trail from before the tree has no tree_heads
                if heads_lo <= heads_hi:
                    bad = first_bad_head(conn, keys, heads_lo, heads_hi)
            finally:
                conn.close()
            _write(result_w, ("ok", (check, bad)))
    except BaseException as exc:  # the parent raises it, as one process would have
        code = 1
        try:
            _write(result_w, ("error", exc))
        except Exception:  # one that does not pickle
            _write(result_w, ("error", RuntimeError(f"audit verify worker: {exc!r}")))
    finally:
        os._exit(code)


def _write(fd: int, value: Any) -> None:
    view = memoryview(pickle.dumps(value))
    while view:
        view = view[os.write(fd, view) :]


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)
