"""`make bench`: run every benchmark, then write docs/benchmarks.json and docs/BENCHMARKS.md.

    .venv/bin/python -m tests.bench.run              # everything (what `make bench` runs)
    .venv/bin/python -m tests.bench.run --render     # re-render the Markdown from the JSON
    .venv/bin/python -m tests.bench.run --only verify  # re-measure sections into the JSON

Sections run one after the other (never two at once, except the three RSS processes); each
section's failure is recorded in the JSON and the report instead of hiding the others.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from .common import ROOT, WORK, log, machine, versions, write_json

JSON_OUT = ROOT / "docs" / "benchmarks.json"
MD_OUT = ROOT / "docs" / "BENCHMARKS.md"


def _section(results: dict[str, Any], name: str, fn: Callable[[], dict[str, Any]]) -> None:
    log(f"--- {name}")
    t0 = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as exc:  # recorded, not hidden: the report shows the failure
        traceback.print_exc()
        results[name] = {"error": f"{type(exc).__name__}: {exc}"[:4000]}
    results.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t0, 1)
    results.setdefault("section_load_average", {})[name] = [round(x, 2) for x in os.getloadavg()]
    log(f"--- {name} done in {results['section_seconds'][name]:.0f} s")


def _sections() -> dict[str, Callable[[], dict[str, Any]]]:
    from . import bench_engine, bench_nodes, bench_replay, bench_rpc, bench_scale, bench_verify

    return {
        "engine": bench_engine.run,
        "rpc": bench_rpc.run,
        "replay": bench_replay.run,
        "scale": bench_scale.run,
        "verify": bench_verify.run,
        "nodes": bench_nodes.run,
    }


def main(argv: list[str]) -> int:
    from . import report

    if "--render" in argv:
        results = json.loads(JSON_OUT.read_text(encoding="utf-8"))
        results["targets"] = report.targets(results)  # the report's current list of targets
        MD_OUT.write_text(report.render(results), encoding="utf-8")
        return 0
    started = float(os.environ.get("BENCH_STARTED") or time.time())
    WORK.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "stamp": {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "machine": machine(),
            "versions": versions(),
            "command": "make bench",
        }
    }
    sections = _sections()
    if "--only" in argv:
        # One section re-measured; the others' figures stay those of the JSON's last run.
        chosen = argv[argv.index("--only") + 1 :]
        unknown = [c for c in chosen if c not in sections]
        if not chosen or unknown:
            log(f"--only SECTION ...: one of {', '.join(sections)} (not {unknown})")
            return 2
        previous = json.loads(JSON_OUT.read_text(encoding="utf-8"))
        only = {
            "sections": chosen,
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "commit": versions().get("git_commit"),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }
        stamp = previous.get("stamp", {})
        prior = stamp.get("only", [])
        prior = [prior] if isinstance(prior, dict) else prior  # one, as first written
        earlier = [o for o in prior if not set(o["sections"]) & set(chosen)]
        results = {**previous, "stamp": {**stamp, "only": [*earlier, only]}}
        sections = {k: sections[k] for k in chosen}
    for name, fn in sections.items():
        _section(results, name, fn)
    results["targets"] = report.targets(results)
    if "--only" not in argv:
        results["total_runtime_seconds"] = round(time.time() - started, 1)
    results["stamp"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_json(JSON_OUT, results)
    MD_OUT.write_text(report.render(results), encoding="utf-8")
    log(
        f"wrote {JSON_OUT.relative_to(ROOT)} and {MD_OUT.relative_to(ROOT)} "
        f"(make bench total {results['total_runtime_seconds']:.0f} s)"
    )
    for t in results["targets"]:
        log(f"target {t['target']}: {t['measured']} -> {t['status']}")
    return 0 if not any("error" in v for v in results.values() if isinstance(v, dict)) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
