"""A candidate set's own rule tests, run before it may go live (ops/gate.py).

The cases are the `*.cases.jsonl` files beside the rule files, exactly what `miaopi rules test DIR`
runs for an author: this starts that very command on the staged copy, in a process of its
own (it decides with an engine of its own, as the compile check does), so publication and an
author's check cannot disagree. A failing case refuses the set, naming every failing case.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miaopi_server.errors import Diagnostic
from miaopi_server.ops import checkproc

CASE_FAILED = "MP370"  # a case of the set's own rule tests does not pass
CASES_UNCHECKED = "MP371"  # the rule tests could not be run (bad case file, crash, deadline)
MAX_LISTED = 50  # failing cases named one by one; the rest are counted
MAX_DETAIL = 300


@dataclass
class CaseRun:
    """A `rules test` process running on a staged copy."""

    root: Path
    proc: subprocess.Popen[str] | None
    problem: str = ""  # why it could not start


def start(root: Path) -> CaseRun:
    """Start `miaopi rules test ROOT --json` with this interpreter."""
    try:
        proc = checkproc.spawn(["-m", "miaopi_client.cli", "rules", "test", str(root), "--json"])
    except OSError as exc:
        return CaseRun(root, None, f"无法启动规则测试进程：{exc}")
    return CaseRun(root, proc)


def stop(run: CaseRun) -> None:
    """Kill a run whose verdict is no longer needed (the compile check refused the set)."""
    if run.proc is not None and run.proc.poll() is None:
        run.proc.kill()
        run.proc.communicate()


def finish(run: CaseRun, deadline: float) -> list[Diagnostic]:
    """Wait (at most `deadline` seconds) for the run; the diagnostics refusing the set, or []
    when every case passed."""
    where = str(run.root)
    if run.proc is None:
        return [Diagnostic(where, 1, 1, CASES_UNCHECKED, run.problem)]
    try:
        stdout, stderr = run.proc.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        stop(run)
        message = f"规则测试超过时限 {deadline:g} 秒，已终止（可调 --gate-seconds）"
        return [Diagnostic(where, 1, 1, CASES_UNCHECKED, message)]
    try:
        report: dict[str, Any] = json.loads(stdout)
    except ValueError:
        last = (stderr.strip().splitlines() or ["无输出"])[-1][:MAX_DETAIL]
        message = f"规则测试未能运行（退出码 {run.proc.returncode}）：{last}"
        return [Diagnostic(where, 1, 1, CASES_UNCHECKED, message)]
    return failing_cases(report, run.root)


def failing_cases(report: dict[str, Any], root: Path) -> list[Diagnostic]:
    """One diagnostic per failing case of a `rules test --json` report, located at its line."""
    out: list[Diagnostic] = []
    failures = [f for item in report.get("items", []) for f in item.get("failures", [])]
    for f in failures[:MAX_LISTED]:
        mismatches = "；".join(str(m) for m in f.get("mismatches", []))[:MAX_DETAIL]
        message = f"规则测试用例 {f.get('case_id', '?')} 未通过：{mismatches}"
        file = _relative(str(f.get("file", "")), root)
        out.append(Diagnostic(file, int(f.get("line") or 1), 1, CASE_FAILED, message))
    if len(failures) > MAX_LISTED:
        rest = len(failures) - MAX_LISTED
        out.append(Diagnostic(str(root), 1, 1, CASE_FAILED, f"另有 {rest} 个用例未通过"))
    if not out and not report.get("ok", False):
        # Not a failing case: e.g. coverage; rules test's own verdict still refuses.
        out.append(Diagnostic(str(root), 1, 1, CASES_UNCHECKED, "规则测试未通过"))
    return out


def _relative(file: str, root: Path) -> str:
    """A case file of the staged copy named as in the rules directory: `<name>/<path>`."""
    try:
        return str(Path(root.name) / Path(file).resolve().relative_to(root.resolve()))
    except ValueError:
        return file
