"""Deciding many cases in worker processes, for the offline commands (`miaopi replay
--rulesets`, `miaopi rules diff`): how many workers, and an ordered map over them.

Results come back in the order of the work units, so a report merged from them is the one a
single process would build.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

PARALLEL_MIN_CASES = 4000  # below this, worker processes cost more than they save
MAX_JOBS = 8  # a spawned worker loads the rules engine and the catalog itself
# Cases (or lines) per work unit: a unit costs ~0.1 ms to hand out and send back, and the
# workers finish at most one unit apart.
CHUNK = 1000


def cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def jobs_for(requested: int, n_cases: int) -> int:
    """Worker processes to use: as requested (1 = in this process), else (0) one per CPU,
    up to MAX_JOBS, when there are at least PARALLEL_MIN_CASES cases."""
    if requested > 0:
        return requested
    if n_cases < PARALLEL_MIN_CASES:
        return 1
    return max(1, min(cpus(), MAX_JOBS))


def ranges(n: int, size: int = CHUNK) -> Iterator[tuple[int, int]]:
    """[start, stop) index ranges covering n items, `size` at a time."""
    for start in range(0, n, size):
        yield start, min(start + size, n)


def line_ranges(data: bytes, size: int = CHUNK) -> Iterator[tuple[int, int, int, int]]:
    """Units of about `size` lines of a text file's bytes, each ending at a line's end (or at
    the end of the data): (start byte, stop byte, its first line's number (1-based), lines).
    Lines are what cases.split_lines gives; a unit's lines are those of data[start:stop]."""
    n_lines = data.count(b"\n") + (not data.endswith(b"\n"))
    if not data:
        return
    step = max(1, len(data) * size // n_lines)  # bytes per unit, from the mean line length
    start, line = 0, 1
    while start < len(data):
        stop = data.find(b"\n", min(start + step, len(data)) - 1)
        stop = len(data) if stop < 0 else stop + 1
        lines = data.count(b"\n", start, stop) + (data[stop - 1] != 0x0A)
        yield start, stop, line, lines
        start, line = stop, line + lines


def forks() -> bool:
    """Whether imap forks its workers (so they inherit objects it is given) or spawns them."""
    return threading.active_count() == 1


_INIT_ERROR: BaseException | None = None


def _init(initializer: Callable[..., None], args: tuple[Any, ...]) -> None:
    # A Pool replaces a worker whose initializer raised, forever: keep the error instead and
    # raise it from the first work unit, so that it reaches the parent.
    global _INIT_ERROR
    try:
        initializer(*args)
    except BaseException as exc:  # re-raised by _call
        _INIT_ERROR = exc


def _call(work: Callable[[T], R], unit: T) -> R:
    if _INIT_ERROR is not None:
        raise _INIT_ERROR
    return work(unit)


def imap(
    n_jobs: int,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...],
    work: Callable[[T], R],
    units: Iterable[T],
    fork: bool | None = None,
) -> Iterator[R]:
    """work(unit) for every unit, in order, computed in n_jobs worker processes that each ran
    initializer(*initargs) first. `initializer` and `work` must be module-level functions.

    Workers are forked when this process runs no other thread (the CLI): they inherit
    `initargs` (e.g. every loaded case) without pickling. Otherwise they are spawned, since
    forking a process with live threads (e.g. gRPC's) can deadlock the child; `initargs` are
    then pickled to each worker. `fork`: what forks() said when the caller chose `initargs`
    (objects only a forked worker can inherit), else asked here."""
    import functools
    import multiprocessing

    ctx = multiprocessing.get_context("fork" if (forks() if fork is None else fork) else "spawn")
    # A forked worker inherits the parent's heap: frozen, its garbage collector does not walk
    # those objects (and copy every page they sit on).
    gc.freeze()
    try:
        with ctx.Pool(n_jobs, initializer=_init, initargs=(initializer, initargs)) as pool:
            yield from pool.imap(functools.partial(_call, work), units)
    finally:
        gc.unfreeze()
