"""The rule-set gate's check process (ops/gate.py starts it; it never runs in the server):

    python -m miaopi_server.ops.gate_check DIR --cases N --deadline SECONDS --seed TEXT

Compiles DIR, registers every item version in a fresh engine, decides N generated cases per
version (rules/samples.py) and compares every firing with the reference semantics
(decision/selfcheck.py). Writes JSON lines on stdout: a progress line before each step that
could crash or hang the engine (so that the parent can name the file if this process dies),
then one `verdict` line with every diagnostic. Exit status 0 whenever a verdict was written,
whatever it says; anything else (a signal above all) is for the parent to interpret.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from miaopi_server.decision.engine import Engine, RulesetHandle
from miaopi_server.decision.selfcheck import FAILED, exercise
from miaopi_server.errors import Diagnostic, EngineError
from miaopi_server.rules.compile import CompiledItem
from miaopi_server.rules.directory import compile_directory
from miaopi_server.rules.samples import sample_cases


def _emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields, ensure_ascii=False) + "\n")
    sys.stdout.flush()  # the parent reads progress even from a process that dies next


def check(root: Path, cases: int, seed: str) -> dict[str, Any]:
    """The verdict on the set under `root` (all of it, as one line's fields)."""
    started = time.monotonic()
    _emit(event="compile", file=str(root))
    compiled, diagnostics = compile_directory(root)
    problems = [d for d in diagnostics if d.severity == "error"]
    warnings = [d for d in diagnostics if d.severity != "error"]
    engine = Engine()
    registered: list[tuple[CompiledItem, RulesetHandle]] = []
    totals = {"decided": 0, "invalid": 0}
    if not problems:
        # Registered all first, in the order load_catalog uses: the engine's crash paths
        # depend on what is already registered, so this reproduces the serving process's.
        for c in sorted(compiled, key=lambda c: (c.item.code, c.item.starts)):
            label = f"{c.item.code}@{c.item.version}"
            _emit(event="register", file=c.item.source, item=label)
            try:
                registered.append((c, engine.register(label, c.conditions)))
            except EngineError as exc:
                problems.append(Diagnostic(c.item.source, 1, 1, FAILED, str(exc)))
        for c, handle in registered if not problems else []:
            label = f"{c.item.code}@{c.item.version}"
            _emit(event="exercise", file=c.item.source, item=label)
            samples = sample_cases(c.item, cases, random.Random(f"{seed}:{label}"))
            result = exercise(c, handle, engine, samples)
            totals["decided"] += result.decided
            totals["invalid"] += result.invalid
            problems.extend(result.problems)
    return {
        "event": "verdict",
        "passed": not problems,
        "diagnostics": [dataclasses.asdict(d) for d in problems + warnings],
        "items": len(compiled),
        **totals,
        "seconds": round(time.monotonic() - started, 3),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m miaopi_server.ops.gate_check")
    p.add_argument("rulesets", type=Path)
    p.add_argument("--cases", type=int, default=100, help="generated cases per item version")
    p.add_argument("--deadline", type=float, default=30.0, help="seconds before this exits")
    p.add_argument("--seed", default="", help="seeds the generated cases")
    args = p.parse_args(argv)
    # Never outlive the parent's deadline, even spinning inside the engine's C code with the
    # GIL held: SIGALRM's default action ends the process without needing Python to run.
    signal.alarm(max(1, math.ceil(args.deadline) + 1))
    _emit(**check(args.rulesets, args.cases, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
