"""Replay (spec part 3): `miaopi replay --rulesets` and `miaopi rules diff` on 100,000 cases.

The case file: 100,000 generated cases over the four items in turn (cases.mixed), each with
`expected` = outcome, missing materials and monthly amount as miaopi decides them (computed
once, in worker processes, before anything is timed), so a replay checks every case.
Timed: the whole CLI command, wall clock, from process start to exit (interpreter start-up,
reading and checking the case file, loading the rule files, deciding every case, comparing,
printing the report). Each command must exit 0 (replay exits 1 on any mismatch) and
name all 100,000 cases in its report.

`rules diff` compares rulesets/ with a copy in which one item changed (the senior allowance's
70-79 band pays 40 instead of 30), the usual review of a policy change: by default a case whose
rule file is identical on both sides is decided once (it cannot change), the changed item's
cases under both sets; `--decide-all` decides every case under both sets. Both use the
command's default worker processes (one per CPU for 4,000+ cases).
"""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from . import profiles
from .common import PY, RULESETS, TODAY, WORK, env, log, median

N_CASES = 100_000


def _decide_chunk(args: tuple[int, int]) -> list[str]:
    """Worker: generate cases [start, stop) of the mixed stream and their expectations."""
    from miaopi_server.decision.catalog import load_catalog
    from tests.case_generator import mixed

    start, stop = args
    catalog = load_catalog(RULESETS)
    lines = []
    for i, (code, facts, materials) in enumerate(mixed(stop)):
        if i < start:
            continue
        d = catalog.decide(code, facts, materials, TODAY)
        expected: dict[str, Any] = {
            "outcome": d.outcome,
            "missing_materials": [m.id for m in d.missing_materials],
        }
        if "monthly_amount" in d.outputs:
            expected["outputs"] = {"monthly_amount": d.outputs["monthly_amount"]}
        case = {
            "case_id": f"bench-{i}",
            "item_code": code,
            "facts": facts,
            "materials": materials,
            "expected": expected,
        }
        lines.append(json.dumps(case, ensure_ascii=False))
    return lines


def case_file(n: int = N_CASES) -> Path:
    path = WORK / "replay" / f"cases-{n}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    half = n // 2
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        parts = pool.map(_decide_chunk, [(0, half), (half, n)])
    path.write_text("\n".join(parts[0] + parts[1]) + "\n", encoding="utf-8")
    return path


def changed_rules() -> Path:
    new = WORK / "replay" / "rules-changed"
    shutil.rmtree(new, ignore_errors=True)
    shutil.copytree(RULESETS, new, ignore=shutil.ignore_patterns("*.cases.jsonl"))
    f = new / "GF00012000-senior-allowance.yaml"
    text = f.read_text(encoding="utf-8")
    assert "        - {value: 30}" in text
    f.write_text(text.replace("        - {value: 30}", "        - {value: 40}"), encoding="utf-8")
    return new


def _timed(cmd: list[str], check: re.Pattern[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=900)
    wall = time.perf_counter() - t0
    if done.returncode != 0 or not check.search(done.stdout):
        raise RuntimeError(
            f"{' '.join(cmd)} -> {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return wall, done.stdout


def run(runs: int = 3, diff_all_runs: int = 3) -> dict[str, Any]:
    miaopi = str(Path(PY).with_name("miaopi"))
    t0 = time.perf_counter()
    cases = case_file()
    gen_seconds = time.perf_counter() - t0
    new = changed_rules()
    out: dict[str, Any] = {
        "cases": N_CASES,
        "case_file_mb": round(cases.stat().st_size / 2**20, 1),
        "generate_seconds": round(gen_seconds, 1),
    }
    help_text = subprocess.run([miaopi, "rules", "--help"], capture_output=True, text=True).stdout
    has_diff = "diff" in help_text

    # replay exits non-zero on any mismatch; diff (without --fail-on-change) on any error.
    total = re.compile(rf"\b{N_CASES}\b")
    commands = {
        "replay": ([miaopi, "replay", str(cases), "--rulesets", str(RULESETS)], total, runs),
    }
    if has_diff:
        diff = [miaopi, "rules", "diff", str(RULESETS), str(new), "--cases", str(cases)]
        unchanged = total
        commands["rules_diff"] = (diff, unchanged, runs)
        commands["rules_diff_decide_all"] = ([*diff, "--decide-all"], unchanged, diff_all_runs)
    else:
        out["rules_diff"] = {"skipped": "`miaopi rules diff` does not exist in this tree"}
    walls: dict[str, list[float]] = {k: [] for k in commands}
    summary: dict[str, str] = {}
    for r in range(max(c[2] for c in commands.values())):
        for name, (cmd, check, n) in commands.items():
            if r >= n:
                continue
            wall, stdout = _timed(cmd, check)
            walls[name].append(wall)
            summary[name] = "\n".join(stdout.strip().splitlines()[-3:])
            log(f"{name} run {r + 1}: {wall:.1f} s ({N_CASES / wall:,.0f} cases/s)")
    for name, (cmd, _, _) in commands.items():
        out[name] = {
            "seconds": {"median": median(walls[name]), "runs": walls[name]},
            "cases_per_second": N_CASES / median(walls[name]),
            "command": " ".join(_rel(c) for c in cmd),
            "report_tail": summary[name],
        }
    out["cpu_replay"] = _cpu_split(commands["replay"][0])
    out["profile_replay"] = _profile(cases)
    return out


CPU_SCRIPT = """
import json, resource, sys, time
t0 = time.perf_counter()
from miaopi_client.cli import main
t1 = time.perf_counter()
code = main(sys.argv[1:])
t2 = time.perf_counter()
me = resource.getrusage(resource.RUSAGE_SELF)
workers = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "import_s": t1 - t0, "main_s": t2 - t1,
                  "parent_cpu_s": me.ru_utime + me.ru_stime,
                  "workers_cpu_s": workers.ru_utime + workers.ru_stime}), file=sys.stderr)
"""


def _cpu_split(cmd: list[str], runs: int = 3) -> dict[str, Any]:
    """Where the replay command's time goes: the CLI's imports, and the CPU time of the parent
    (reading the file, loading the catalog, merging, the report) and of its worker processes
    (parsing, deciding and comparing every case), the run with the least worker CPU of `runs`
    (the machine is shared: more CPU time is other load, not this command's work)."""
    best: dict[str, Any] | None = None
    for _ in range(runs):
        done = subprocess.run(
            [PY, "-c", CPU_SCRIPT, *cmd[1:]], capture_output=True, text=True, env=env(), timeout=900
        )
        got = json.loads(done.stderr.strip().splitlines()[-1])
        if got["code"] != 0:
            raise RuntimeError(f"replay under rusage -> {got['code']}\n{done.stderr[-2000:]}")
        if best is None or got["workers_cpu_s"] < best["workers_cpu_s"]:
            best = got
    assert best is not None
    best["microseconds_per_case"] = 1e6 * (best["parent_cpu_s"] + best["workers_cpu_s"]) / N_CASES
    return best


def _rel(arg: str) -> str:
    from .common import ROOT

    return arg.replace(str(ROOT) + "/", "")


def _profile(cases: Path, n: int = 10_000) -> dict[str, Any]:
    """cProfile of the replay command's own code path (read, parse, decide, compare) on n
    cases in one process (`--jobs 1`: worker processes are out of cProfile's sight; with
    two, each runs this same path on its units of lines)."""
    from miaopi_client.replay import replay_file

    sample = cases.with_name(f"profile-{n}.jsonl")
    with cases.open(encoding="utf-8") as f:
        sample.write_text("".join(next(f) for _ in range(n)), encoding="utf-8")

    def work() -> None:
        report = replay_file(sample, RULESETS, TODAY, jobs=1)
        assert report.failed == 0

    prof = profiles.cprofile(work)
    prof["cases"] = n
    return prof
