"""The rule-set gate: the one way a rule set goes live (start-up, SIGHUP, ReloadRulesets, the
file watch when enabled).

The rules directory is copied under the state directory (ops/staging.py); a separate process
(ops/gate_check.py) compiles the copy, registers every item version in a fresh engine and
decides generated cases against the reference semantics. Only when it gives a passing verdict
within the deadline, and the set's own rule tests (the case files beside its rule files,
ops/casetests.py) all pass, does this process load the same copy. A check process that dies on a
signal (the engine crashed: SIGSEGV, SIGABRT), runs past the deadline (the engine hangs; it is
killed) or reports a problem gets the set refused with diagnostics naming the file it was
working on; the serving process never touched the set.

What it cannot catch: an engine failure that depends on the serving process's own heap (one is
documented in tests/test_engine.py). The compiler's static limits exist for those.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from miaopi_server.decision.catalog import Catalog, load_catalog
from miaopi_server.decision.engine import Engine
from miaopi_server.errors import Diagnostic, RuleFileError
from miaopi_server.ops import casetests, checkproc, staging

log = structlog.get_logger("miaopi.gate")

CRASHED = "MP190"  # the check process died on a signal: the engine crashed on this set
TIMED_OUT = "MP191"  # the check ran past the deadline: a hang, or a set too big to check in time
CHECK_FAILED = "MP194"  # the check process failed otherwise (could not start, bad output)
_STEPS = {"compile": "编译规则目录", "register": "注册到规则引擎", "exercise": "判定生成的用例"}
MAX_DETAIL = 300


@dataclass(frozen=True)
class GatePolicy:
    """How hard a set is checked: `deadline` seconds for the whole check process, `cases`
    generated cases per item version (Settings.gate_seconds, Settings.gate_cases)."""

    deadline: float = 30.0
    cases: int = 100


@dataclass(frozen=True)
class Verdict:
    passed: bool
    diagnostics: list[Diagnostic]  # the problems when refused; warnings when passed
    seconds: float  # wall time of the check process, start to exit
    decided: int = 0  # generated cases decided and compared


@dataclass(frozen=True)
class Admitted:
    """A set that passed the gate, loaded from its staged copy."""

    catalog: Catalog
    staged: staging.Staged
    verdict: Verdict


def _progress(lines: list[dict[str, Any]]) -> tuple[str, str]:
    """(what the check was doing, the file) at its last progress line."""
    for line in reversed(lines):
        if line.get("event") in _STEPS:
            item = f"（{line['item']}）" if line.get("item") else ""
            return f"{_STEPS[line['event']]}{item}", str(line.get("file", ""))
    return "启动", ""


def _lines(stdout: str) -> list[dict[str, Any]]:
    out = []
    for text in stdout.splitlines():
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if isinstance(line, dict):
            out.append(line)
    return out


def check(root: Path, policy: GatePolicy, seed: str = "") -> Verdict:
    """Run the check process on the set under `root`; never raises for what the set does."""
    argv = ["-m", "miaopi_server.ops.gate_check", str(root), "--cases", str(policy.cases),
            "--deadline", str(policy.deadline), "--seed", seed]  # fmt: skip
    started = time.monotonic()
    try:
        proc = checkproc.spawn(argv)
    except OSError as exc:
        message = f"无法启动规则集检查进程：{exc}"
        return Verdict(False, [Diagnostic(str(root), 1, 1, CHECK_FAILED, message)], 0.0)
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=policy.deadline)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        stdout, stderr = proc.communicate()
    seconds = time.monotonic() - started
    lines = _lines(stdout)
    verdict = next((line for line in lines if line.get("event") == "verdict"), None)
    if verdict is not None and proc.returncode == 0 and not timed_out:
        diagnostics = [Diagnostic(**d) for d in verdict.get("diagnostics", [])]
        passed = bool(verdict.get("passed"))
        return Verdict(passed, diagnostics, seconds, int(verdict.get("decided", 0)))
    doing, file = _progress(lines)
    where = file or str(root)
    if timed_out or proc.returncode == -signal.SIGALRM:
        code = TIMED_OUT
        message = (
            f"规则集检查超过时限 {policy.deadline:g} 秒（正在{doing}），已终止："
            "规则引擎在此文件上停滞，或规则集过大、无法在时限内检查（可调 --gate-seconds）"
        )
    elif proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        code = CRASHED
        message = f"检查进程在{doing}时被 {name} 终止（规则引擎崩溃）：此规则集会使服务进程崩溃"
    else:
        code = CHECK_FAILED
        last = stderr.strip().splitlines()[-1:] or ["无输出"]
        detail = last[0][:MAX_DETAIL]
        message = f"规则集检查进程在{doing}时异常退出（退出码 {proc.returncode}）：{detail}"
    return Verdict(False, [Diagnostic(where, 1, 1, code, message)], seconds)


def admit(
    root: Path, state_dir: Path, policy: GatePolicy, engine: Engine | None = None
) -> Admitted:
    """Stage `root`, check the copy in a separate process, then load that copy here.

    Raises RuleFileError with every diagnostic when the set is refused (nothing was loaded in
    this process), OSError when the directory cannot be read or staged."""
    staged = staging.stage(root, state_dir)
    return _admit_staged(staged, policy, engine, source=root, remember=state_dir)


def admit_last_good(
    root: Path, state_dir: Path, policy: GatePolicy, engine: Engine | None = None
) -> tuple[Admitted, staging.LastGood] | None:
    """The last set that went live from `root`, through the gate again; None if there is none
    (or it no longer passes)."""
    previous = staging.last_good(state_dir, root)
    if previous is None:
        return None
    try:
        return _admit_staged(previous.staged, policy, engine, source=root, remember=None), previous
    except (RuleFileError, OSError) as exc:
        log.error("rules.last_good_refused", digest=previous.staged.digest, error=str(exc))
        return None


def _admit_staged(
    staged: staging.Staged,
    policy: GatePolicy,
    engine: Engine | None,
    source: Path,
    remember: Path | None,
) -> Admitted:
    cases = casetests.start(staged.path)  # the set's own rule tests, alongside the check
    try:
        verdict = check(staged.path, policy, seed=staged.digest)
    except BaseException:
        casetests.stop(cases)
        raise
    if verdict.passed:
        failing = casetests.finish(cases, policy.deadline)
        if failing:
            verdict = Verdict(
                False, failing + verdict.diagnostics, verdict.seconds, verdict.decided
            )
    else:
        casetests.stop(cases)
    log.info(
        "rules.gate",
        passed=verdict.passed,
        seconds=round(verdict.seconds, 3),
        decided=verdict.decided,
        set_digest=staged.digest,
        rulesets=str(source),
    )
    if not verdict.passed:
        raise RuleFileError(verdict.diagnostics)
    catalog = load_catalog(staged.path, engine)  # the bytes that passed, and only those
    if remember is not None:
        try:
            staging.remember_good(remember, staged, source)
        except OSError as exc:  # serving matters more than the fallback copy: say so, go on
            log.error("rules.last_good_not_saved", error=str(exc))
    return Admitted(catalog, staged, verdict)
