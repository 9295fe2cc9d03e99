"""Profiles for the targets a run misses: py-spy (a live server) and cProfile (in-process).

Both are reduced to the same shape: the top functions by self time and by inclusive time,
each as a percentage of the samples (py-spy) or of the profiled wall time (cProfile).
"""

from __future__ import annotations

import cProfile
import pstats
import re
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import PY, log

_SITE = re.compile(r"^.*?/(site-packages|lib/python3\.\d+|server|clients|tests)/")


def _short(path: str) -> str:
    return _SITE.sub("", path)


def py_spy(
    pid: int,
    seconds: float,
    out: Path,
    rate: int = 250,
    categories: tuple[tuple[str, tuple[str, ...]], ...] = (),
) -> dict[str, Any]:
    """Sample a running process with py-spy and summarise. Only samples of the thread holding
    the GIL are kept (--gil): the server is GIL-bound, so this is where its throughput goes."""
    py_spy_bin = Path(PY).with_name("py-spy")
    cmd = [str(py_spy_bin), "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(rate)]
    cmd += ["-f", "raw", "--gil", "--function", "--threads", "--nonblocking", "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0 or not out.exists():
        log(f"py-spy failed: {done.stderr.strip()[-300:]}")
        return {"error": done.stderr.strip()[-300:]}
    summary = collapsed_summary(out, categories=categories)
    summary.update(seconds=seconds, rate_hz=rate)
    # share of wall time in which some thread held the GIL
    summary["gil_held_fraction"] = round(summary["samples"] / (seconds * rate), 3)
    return summary


# Where a Decide spends the GIL, by the first marker found in a sample's stack (in this order).
DECIDE_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "audit writer thread (chain, canonical JSON, Ed25519 seal, SQLite insert/commit)",
        ("_write_loop", "_write_batch"),
    ),
    (
        "catalog.decide (validation, derivation, probes, durable_rules, assembly)",
        ("Catalog.decide",),
    ),
    (
        "convert.decide_response (domain decision -> protobuf)",
        ("decision_message (miaopi_server/edge/convert.py", "decide_response (miaopi_server/edge"),
    ),
    ("rest of Decide (context vars, uuid, clock, Timestamp, response)", ("make_decision",)),
    (
        "audit work in the request path (case and decision canonical JSON, digest, receipt, "
        "futures)",
        ("Recorder.", "case_digest", "ChainStore.append"),
    ),
    (
        "per-decision log line (ops/logline, ops/logsink, structlog)",
        ("miaopi_server/ops/logline", "miaopi_server/ops/logsink", "structlog"),
    ),
    ("authentication (token hash, rate limiter)", ("ApprovalService.guard",)),
    ("facts Struct -> dict", ("facts_from_struct",)),
    (
        "rest of Decide (context vars, uuid, clock, Timestamp, response)",
        ("ApprovalService.Decide",),
    ),
    ("gRPC aio + asyncio machinery (incl. grpc cython, HTTP/2, serialisation)", ("",)),
)


def collapsed_summary(
    path: Path,
    top: int = 15,
    categories: tuple[tuple[str, tuple[str, ...]], ...] = (),
) -> dict[str, Any]:
    """Top functions of a py-spy raw (collapsed) profile; with `categories`, the share of
    samples whose stack first matches each category's markers."""
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    cats: Counter[str] = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        thread = frames[0]
        known = ("MainThread", "audit-writer")
        threads[next((k for k in known if k in thread), "other threads")] += count
        total += count
        funcs = [_short(f) for f in frames[1:]]
        joined = ";".join(frames[1:])
        for label, markers in categories:
            if any(m in joined for m in markers):
                cats[label] += count
                break
        if funcs:
            self_t[funcs[-1]] += count
        for f in set(funcs):
            incl[f] += count

    def pct(c: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": f, "percent": round(100 * v / total, 1)} for f, v in c.most_common(top)
        ]

    return {
        "samples": total,
        "threads": {t: round(100 * v / total, 1) for t, v in threads.most_common()},
        "categories": {c: round(100 * cats[c] / total, 1) for c, _ in categories},
        "top_self": pct(self_t),
        "top_inclusive": pct(incl),
    }


def cprofile(fn: Callable[[], Any], top: int = 40) -> dict[str, Any]:
    """Run fn under cProfile; top functions by self (tottime) and inclusive (cumtime) time."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof)
    # the profiled wall time: the largest inclusive time (the outermost call)
    total = max(v[3] for v in stats.stats.values())  # type: ignore[attr-defined]

    def name(key: tuple[str, int, str]) -> str:
        file, line, func = key
        return func if file == "~" else f"{func} ({_short(file)}:{line})"

    rows = list(stats.stats.items())  # type: ignore[attr-defined]
    by_self = sorted(rows, key=lambda kv: kv[1][2], reverse=True)[:top]
    by_cum = sorted(rows, key=lambda kv: kv[1][3], reverse=True)[:top]
    return {
        "profiled_seconds": round(total, 3),
        "top_self": [
            {"function": name(k), "percent": round(100 * v[2] / total, 1), "calls": v[1]}
            for k, v in by_self
        ],
        "top_inclusive": [
            {"function": name(k), "percent": round(100 * v[3] / total, 1), "calls": v[1]}
            for k, v in by_cum
        ],
    }
