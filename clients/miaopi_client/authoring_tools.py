"""`miaopi rules test | explain | diff`: offline tools for rule authors, in-process (no server).

- `test DIR`: run the cases that sit next to each item's rule file (any *.cases.jsonl in the
  same folder, cases with that item's code; the server stages and archives the same files)
  and measure rule coverage: the policy rules that at least one passing case has as a
  reason, over all policy rules of the item.
- `explain DIR --item CODE --facts FILE`: every rule of the deciding version with ✓ / ✗
  matched (from the rules engine), the values it read and which parts of a compound condition
  held (reference semantics, explanation only), then the decision.
- `diff OLD NEW --cases FILE`: decide every case under both rule sets and report, per item, the
  outcome transitions and the output changes, with examples.

Exit codes as in `miaopi`: 0 success, 1 failing cases / coverage below the minimum / changes
with --fail-on-change, 2 bad input (rule files that do not load, unreadable files, a malformed
case), 3 unknown item code (explain).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import parallel, render
from .cases import (
    Case,
    FileCheck,
    Problem,
    checked_keys,
    checks_nothing,
    count_lines,
    load_cases,
    parse_cases,
    parse_unit,
    read_data,
    same_value,
    unknown_rules,
    unreadable,
)
from .cmdline import (
    BAD_INPUT,
    FAILED,
    NOT_FOUND,
    OK,
    BadInput,
    date_arg,
    err,
    print_json,
    read_facts,
)
from .parallel import PARALLEL_MIN_CASES, forks, imap, jobs_for, line_ranges, ranges
from .replay import CASE_ERRORS, CaseResult, from_catalog, replay
from .wire import wire_facts

if TYPE_CHECKING:  # imported where used: the CLI loads the rules engine only when needed
    from miaopi_server.offline import Catalog

EXAMPLES = 5  # example case ids kept per transition / output change


def add_parsers(rsub: Any) -> None:
    """Register `miaopi rules test | explain | diff`."""
    s = rsub.add_parser(
        "test",
        help="run each item's co-located cases and report rule coverage",
        description="Runs, for every item in DIR, the cases in *.cases.jsonl files next to its "
        "rule file whose item_code is the item's. Coverage: policy rules that at least one passing "
        "case has as a reason / all policy rules. Exit 1 if a case fails or an item's "
        "coverage is below --min-coverage.",
    )
    s.add_argument("rulesets", type=Path, metavar="DIR", help="rules directory")
    s.add_argument(
        "--min-coverage",
        type=_percent,
        default=0.0,
        metavar="PCT",
        help="fail when an item's rule coverage is below PCT (0-100, default 0)",
    )
    _add_today(s)
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(run=_cmd_test)

    s = rsub.add_parser(
        "explain",
        help="show, rule by rule, why a case is decided the way it is",
        description="✓/✗ matched comes from the rules engine; which parts of a compound "
        "condition held is computed with the reference semantics, as an explanation only.",
    )
    s.add_argument("rulesets", type=Path, metavar="DIR", help="rules directory")
    s.add_argument("--item", required=True, metavar="CODE", help="item code")
    s.add_argument(
        "--facts", required=True, metavar="FILE", help='JSON object of facts; "-" reads stdin'
    )
    s.add_argument("--materials", default="", metavar="A,B,C", help="submitted material ids")
    _add_today(s)
    s.add_argument("--json", action="store_true", help="print the explanation as JSON")
    s.set_defaults(run=_cmd_explain)

    s = rsub.add_parser(
        "diff",
        help="decide a case file under two rule sets and report what changes",
        description="Outcome transitions (including INVALID_ARGUMENT / NOT_FOUND) and, for "
        "cases whose outcome is unchanged, output changes, per item, with example case ids.",
    )
    s.add_argument("old", type=Path, metavar="OLD_DIR", help="rules directory before")
    s.add_argument("new", type=Path, metavar="NEW_DIR", help="rules directory after")
    s.add_argument("--cases", required=True, type=Path, metavar="FILE", help="JSONL case file")
    s.add_argument(
        "--fail-on-change", action="store_true", help="exit 1 when any case's decision changes"
    )
    s.add_argument(
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help=f"worker processes (default: one per CPU for {PARALLEL_MIN_CASES}+ cases)",
    )
    s.add_argument(
        "--decide-all",
        action="store_true",
        help="decide every case under both sets, even when the same rule file decides it on "
        "both sides (by default such a case is not decided: its decision cannot change)",
    )
    _add_today(s)
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(run=_cmd_diff)


def _add_today(s: argparse.ArgumentParser) -> None:
    # Its own dest: `miaopi` checks a top-level `today` against replay's --rulesets.
    s.add_argument(
        "--today",
        dest="rules_today",
        type=date_arg,
        metavar="YYYY-MM-DD",
        help="date for cases without application.date (default: today in Asia/Shanghai)",
    )


def _percent(s: str) -> float:
    try:
        v = float(s.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {s!r}") from None
    if not 0 <= v <= 100 or math.isnan(v):
        raise argparse.ArgumentTypeError(f"a percentage is between 0 and 100: {s!r}")
    return v


def _today(args: argparse.Namespace) -> dt.date:
    if args.rules_today is not None:
        return args.rules_today  # type: ignore[no-any-return]
    from miaopi_server.offline import shanghai_today

    return shanghai_today(dt.datetime.now(dt.UTC))


def _load_catalog(root: Path) -> Catalog:
    from miaopi_server.offline import RuleFileError, load_catalog

    try:
        return load_catalog(root)
    except RuleFileError as exc:
        raise BadInput(f"rule files in {root} failed to load:\n{exc}") from None


# -- rules test


@dataclass
class ItemTest:
    """One item's co-located cases and the rules they exercise."""

    code: str
    name: str
    versions: list[str]
    sources: list[str]
    rules: list[tuple[str, str]]  # (version, rule id), every version's policy rules
    case_files: list[str] = field(default_factory=list)
    results: list[tuple[str, CaseResult]] = field(default_factory=list)  # (file, result)
    exercised: set[tuple[str, str]] = field(default_factory=set)
    checks: Counter[str] = field(default_factory=Counter)  # expectation key -> cases using it

    @property
    def passed(self) -> int:
        return sum(r.passed for _, r in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    @property
    def coverage(self) -> float:
        """Percentage of policy rules exercised by a passing case (100 with no rules)."""
        if not self.rules:
            return 100.0
        return 100.0 * len(self.exercised & set(self.rules)) / len(self.rules)

    def rule_name(self, version: str, rule_id: str) -> str:
        return rule_id if len(self.versions) == 1 else f"{rule_id}@{version}"

    @property
    def unexercised(self) -> list[str]:
        return [self.rule_name(v, r) for v, r in self.rules if (v, r) not in self.exercised]

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_code": self.code,
            "name": self.name,
            "versions": self.versions,
            "sources": self.sources,
            "case_files": self.case_files,
            "cases": len(self.results),
            "passed": self.passed,
            "failed": self.failed,
            "failures": [
                {
                    "case_id": r.case_id,
                    "file": f,
                    "line": r.line,
                    "outcome": r.outcome,
                    "mismatches": r.mismatches,
                }
                for f, r in self.results
                if not r.passed
            ],
            "rules_total": len(self.rules),
            "rules_exercised": len(self.exercised & set(self.rules)),
            "coverage": round(self.coverage, 2),
            "exercised": [self.rule_name(v, r) for v, r in self.rules if (v, r) in self.exercised],
            "unexercised": self.unexercised,
            "checks": dict(sorted(self.checks.items())),
        }


def _rule_file(root: Path, source: str) -> Path:
    """Where a loaded item's file is: Item.source is shown relative to the rules directory's
    parent (else as given)."""
    path = root.parent / source
    return path if path.is_file() else Path(source)


def run_rules_test(
    root: Path, today: dt.date, min_coverage: float = 0.0, catalog: Catalog | None = None
) -> dict[str, Any]:
    """The report of `miaopi rules test` as a dict (see render.rules_test_report). Raises
    CaseFileError for a malformed case file, BadInput for rule files that do not load."""
    own = catalog is None
    catalog = catalog if catalog is not None else _load_catalog(root)
    try:
        decide = from_catalog(catalog, today)
        loaded: dict[Path, list[Case]] = {}
        items: list[ItemTest] = []
        attributed: set[tuple[Path, str]] = set()
        for code in catalog.codes:
            versions = catalog.versions[code]
            t = ItemTest(
                code,
                versions[-1].item.name,
                [v.item.version for v in versions],
                [v.item.source for v in versions],
                [(v.item.version, r.id) for v in versions for r in v.item.rules],
            )
            folders = sorted({_rule_file(root, v.item.source).parent for v in versions})
            for path in sorted(p for d in folders for p in d.glob("*.cases.jsonl") if p.is_file()):
                if path not in loaded:
                    loaded[path] = load_cases(path)
                mine = [c for c in loaded[path] if c.item_code == code]
                if not mine:
                    continue
                t.case_files.append(str(path))
                attributed.update((path, c.case_id) for c in mine)
                decisions: dict[str, dict[str, Any] | None] = {}

                def recording(case: Case, out: dict[str, Any] = decisions) -> Any:
                    outcome, d = decide(case)
                    out[case.case_id] = d
                    return outcome, d

                report = replay(mine, recording)
                by_id = {c.case_id: c for c in mine}
                rule_ids = {r for _, r in t.rules}
                for r in report.results:
                    expected = by_id[r.case_id].expected
                    # A check that cannot fail, or one naming a rule the item does not have,
                    # is a failing case here (an author's own test).
                    problems = checks_nothing(expected) + unknown_rules(expected, rule_ids)
                    if problems:
                        r = CaseResult(
                            r.case_id, r.line, r.item_code, r.outcome, [*r.mismatches, *problems]
                        )
                    t.checks.update(checked_keys(expected))
                    t.results.append((str(path), r))
                    d = decisions.get(r.case_id)
                    if not r.passed or d is None:
                        continue
                    version = d.get("ruleset", {}).get("version", "")
                    t.exercised.update((version, x.get("rule_id", "")) for x in d["reasons"])
            items.append(t)
        unattributed = sum(
            1
            for path, cases in loaded.items()
            for c in cases
            if (path, c.case_id) not in attributed
        )
    finally:
        if own:
            catalog.close()
    failed = sum(t.failed for t in items)
    ok = failed == 0 and all(t.coverage >= min_coverage for t in items)
    return {
        "rulesets": str(root),
        "items": [t.to_dict() for t in items],
        "cases": sum(len(t.results) for t in items),
        "passed": sum(t.passed for t in items),
        "failed": failed,
        "unattributed": unattributed,
        "min_coverage": min_coverage,
        "ok": ok,
    }


def _cmd_test(args: argparse.Namespace) -> int:
    report = run_rules_test(args.rulesets, _today(args), args.min_coverage)
    if args.json:
        print_json(report)
    else:
        print(render.rules_test_report(report))
    return OK if report["ok"] else FAILED


# -- rules explain


def _cmd_explain(args: argparse.Namespace) -> int:
    from miaopi_server.offline import CaseInvalid, ItemNotFound, explain

    facts = read_facts(args.facts)
    materials = [m.strip() for m in args.materials.split(",") if m.strip()]
    catalog = _load_catalog(args.rulesets)
    try:
        e = explain(catalog, args.item, wire_facts(facts), materials, _today(args))
    except CaseInvalid as exc:
        err("INVALID_ARGUMENT: the case is malformed")
        for v in exc.violations:
            print(f"  {v.field}: {v.description}", file=sys.stderr)
        return BAD_INPUT
    except ItemNotFound as exc:
        err(f"NOT_FOUND: {exc}")
        return NOT_FOUND
    finally:
        catalog.close()
    if args.json:
        print_json(e.to_dict())
    else:
        print(render.explanation(e.to_dict()))
    return OK


# -- rules diff


@dataclass
class ItemDiff:
    """What changed for one item's cases. A case is counted once: as an outcome transition,
    else as an output change (same outcome, different outputs), else as unchanged."""

    cases: int = 0
    unchanged: int = 0
    outputs_changed: int = 0
    skipped_identical: int = 0  # same rule file on both sides: not decided, cannot change
    # (old outcome, new outcome) -> [count, example ids]
    transitions: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    # (output, old key, new key) -> [count, example ids, old value, new value]
    outputs: dict[tuple[str, str, str], list[Any]] = field(default_factory=dict)

    def merge(self, other: ItemDiff) -> None:
        self.cases += other.cases
        self.unchanged += other.unchanged
        self.outputs_changed += other.outputs_changed
        self.skipped_identical += other.skipped_identical
        for transition, (n, ex) in other.transitions.items():
            mine = self.transitions.setdefault(transition, [0, []])
            mine[0] += n
            mine[1].extend(ex[: EXAMPLES - len(mine[1])])
        for change, (n, ex, a, b) in other.outputs.items():
            mine = self.outputs.setdefault(change, [0, [], a, b])
            mine[0] += n
            mine[1].extend(ex[: EXAMPLES - len(mine[1])])

    @property
    def outcome_changed(self) -> int:
        return sum(n for n, _ in self.transitions.values())


Outcome = tuple[str, dict[str, Any] | None]  # (outcome, outputs; None for a case error)


class Differ:
    """Decides cases under two catalogs and accumulates the differences per item code."""

    def __init__(self, old: Catalog, new: Catalog, today: dt.date, decide_all: bool = False):
        from miaopi_server.offline import CaseInvalid, ItemNotFound

        self.old, self.new, self.today, self.decide_all = old, new, today, decide_all
        self._invalid, self._not_found = CaseInvalid, ItemNotFound

    def _decide(self, catalog: Catalog, code: str, facts: Any, materials: list[str]) -> Outcome:
        try:
            d = catalog.decide(code, facts, materials, self.today)
        except self._invalid:
            return CASE_ERRORS[0], None
        except self._not_found:
            return CASE_ERRORS[1], None
        return d.outcome, d.outputs

    def _digest(self, catalog: Catalog, code: str, facts: Any) -> str | None:
        try:
            return str(catalog.select(code, facts, self.today).item.digest)
        except (self._invalid, self._not_found):
            return None

    def add(
        self,
        acc: dict[str, ItemDiff],
        case_id: str,
        code: str,
        facts: dict[str, Any],
        materials: list[str],
    ) -> None:
        item = acc.get(code)
        if item is None:
            item = acc[code] = ItemDiff()
        item.cases += 1
        try:
            facts = wire_facts(facts)
        except self._invalid:  # e.g. NaN: refused before any rule set is involved
            item.unchanged += 1
            return
        if not self.decide_all:
            digest = self._digest(self.old, code, facts)
            if digest is not None and digest == self._digest(self.new, code, facts):
                # The same rule file decides the case on both sides, and a decision depends
                # only on (case, rule file, today): it cannot change, so it is not decided.
                item.skipped_identical += 1
                item.unchanged += 1
                return
        before = self._decide(self.old, code, facts, materials)
        after = self._decide(self.new, code, facts, materials)
        if before[0] != after[0]:
            entry = item.transitions.setdefault((before[0], after[0]), [0, []])
            entry[0] += 1
            if len(entry[1]) < EXAMPLES:
                entry[1].append(case_id)
            return
        changed = False
        a, b = before[1] or {}, after[1] or {}
        for name in sorted(a.keys() | b.keys()):
            va, vb = a.get(name), b.get(name)
            if same_value(va, vb):
                continue
            changed = True
            out = item.outputs.setdefault((name, _key(va), _key(vb)), [0, [], va, vb])
            out[0] += 1
            if len(out[1]) < EXAMPLES:
                out[1].append(case_id)
        if changed:
            item.outputs_changed += 1
        else:
            item.unchanged += 1

    def run(self, cases: Iterable[tuple[str, str, dict[str, Any], list[str]]]) -> dict[str, Any]:
        acc: dict[str, ItemDiff] = {}
        for c in cases:
            self.add(acc, *c)
        return acc


def _key(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


# A worker process's differ, and the cases (a list) or the case file (path, bytes) its units
# are cut from (forked workers inherit them, see parallel.imap).
_Source = list[Case] | tuple[Path, bytes]
_WORKER: tuple[Differ, _Source] | None = None
# A unit: cases [start, stop) of a list, or a file's (start, stop, first line, lines)
# (parallel.line_ranges).
_Unit = tuple[int, ...]
# What a unit gives back: the differences by item code; for a file, its cases' ids and lines,
# the problems of its bad lines, and whether a line was not UTF-8.
_DiffPart = tuple[dict[str, ItemDiff], list[tuple[str, int]], list[Problem], bool]


def _init_worker(
    old: str | Catalog, new: str | Catalog, today: dt.date, decide_all: bool, source: _Source
) -> None:
    """A forked worker is handed the parent's loaded catalogs; a spawned one, their
    directories to load."""
    global _WORKER
    from miaopi_server.offline import load_catalog

    old_cat = load_catalog(Path(old)) if isinstance(old, str) else old
    new_cat = load_catalog(Path(new)) if isinstance(new, str) else new
    _WORKER = (Differ(old_cat, new_cat, today, decide_all), source)


def _work(unit: _Unit) -> _DiffPart:
    assert _WORKER is not None
    return _diff_unit(*_WORKER, unit)


def _diff_unit(differ: Differ, source: _Source, unit: _Unit) -> _DiffPart:
    if isinstance(source, list):
        return differ.run(_tuples(source[unit[0] : unit[1]])), [], [], False
    path, data = source
    try:
        cases, problems = parse_unit(path, data, unit[0], unit[1], unit[2])
    except UnicodeDecodeError:
        return {}, [], [], True
    return differ.run(_tuples(cases)), [(c.case_id, c.line) for c in cases], problems, False


def _tuples(cases: list[Case]) -> list[tuple[str, str, Any, list[str]]]:
    return [(c.case_id, c.item_code, c.facts, list(c.materials)) for c in cases]


def run_rules_diff(
    old_dir: Path,
    new_dir: Path,
    cases: list[Case] | Path,
    today: dt.date,
    jobs: int = 0,
    decide_all: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The report of `miaopi rules diff` as a dict (see render.rules_diff_report), on loaded
    cases or on a case file (whose lines are then parsed where they are decided; a bad one
    raises load_cases' CaseFileError, and `progress` counts lines).

    With more than one job, cases are decided in worker processes (parallel.imap; forked ones
    inherit both loaded rule sets and the cases, spawned ones load the rule sets),
    parallel.CHUNK cases or lines at a time; results are merged in file order, so the
    examples are the first ones in the file whichever way the work is split."""
    source: _Source
    if isinstance(cases, Path):
        data = read_data(cases)
        source, check = (cases, data), FileCheck(cases)
        n = data.count(b"\n") + (not data.endswith(b"\n"))
    else:
        source, check, n = cases, None, len(cases)
    try:
        old = _load_catalog(old_dir)
        try:
            new = _load_catalog(new_dir)
        except BadInput:
            old.close()
            raise
    except BadInput:
        if isinstance(source, tuple):
            parse_cases(*source)  # a bad case file is reported first, as it always was
        raise

    def units_of(size: int) -> list[_Unit]:
        if isinstance(source, list):
            return list(ranges(n, size))
        return list(line_ranges(source[1], size))

    started = time.perf_counter()
    acc: dict[str, ItemDiff] = {}
    try:
        n_jobs = jobs_for(jobs, n)
        parts: Iterable[_DiffPart]
        if n_jobs == 1:
            differ = Differ(old, new, today, decide_all)
            units = units_of(250)  # small steps: a smooth progress bar
            parts = (_diff_unit(differ, source, u) for u in units)
        else:
            fork = forks()
            catalogs = (old, new) if fork else (str(old_dir), str(new_dir))
            init = (*catalogs, today, decide_all, source)
            units = units_of(parallel.CHUNK)
            parts = imap(n_jobs, _init_worker, init, _work, units, fork=fork)
        for unit, (part, seen, problems, not_utf8) in zip(units, parts, strict=True):
            if check is not None:
                if not_utf8:
                    raise unreadable(*source)
                check.problems += problems
                for case_id, line in seen:
                    check.first(case_id, line)
            for code, d in part.items():
                acc.setdefault(code, ItemDiff()).merge(d)
            if progress:
                progress(unit[1] - unit[0] if check is None else unit[3])
        if check is not None:
            check.raise_problems()
        elapsed = time.perf_counter() - started
        items = [_item_report(code, acc[code], old, new) for code in sorted(acc)]
    finally:
        old.close()
        new.close()
    outcome_changed = sum(i["outcome_changed"] for i in items)
    outputs_changed = sum(i["outputs_changed"] for i in items)
    return {
        "old": str(old_dir),
        "new": str(new_dir),
        "total": n if check is None else check.cases,
        "outcome_changed": outcome_changed,
        "outputs_changed": outputs_changed,
        "unchanged": sum(i["unchanged"] for i in items),
        "changed": outcome_changed + outputs_changed,
        "skipped_identical": sum(i["skipped_identical"] for i in items),
        "jobs": n_jobs,
        "seconds": round(elapsed, 3),
        "items": items,
    }


def _versions(catalog: Catalog, code: str) -> list[Any]:
    return list(catalog.versions.get(code, []))


def _item_report(code: str, d: ItemDiff, old: Catalog, new: Catalog) -> dict[str, Any]:
    before, after = _versions(old, code), _versions(new, code)
    name = next((v.item.name for v in reversed(after + before)), "")
    transitions = sorted(d.transitions.items(), key=lambda kv: (-kv[1][0], kv[0]))
    outputs = sorted(d.outputs.items(), key=lambda kv: (kv[0][0], -kv[1][0], kv[0][1:]))
    return {
        "item_code": code,
        "name": name,
        "old_versions": [v.item.version for v in before],
        "new_versions": [v.item.version for v in after],
        "identical": bool(before)
        and [v.item.digest for v in before] == [v.item.digest for v in after],
        "cases": d.cases,
        "unchanged": d.unchanged,
        "outcome_changed": d.outcome_changed,
        "outputs_changed": d.outputs_changed,
        "skipped_identical": d.skipped_identical,
        "transitions": [
            {"from": a, "to": b, "count": n, "examples": ex} for (a, b), (n, ex) in transitions
        ],
        "output_changes": [
            {"output": name_, "from": va, "to": vb, "count": n, "examples": ex}
            for (name_, _, _), (n, ex, va, vb) in outputs
        ],
    }


def _cmd_diff(args: argparse.Namespace) -> int:
    if args.jobs < 0:
        raise BadInput("--jobs must be 0 (automatic) or more")
    bar = render.progress_bar(lambda: count_lines(args.cases), "diff", minimum=1)
    try:
        report = run_rules_diff(
            args.old,
            args.new,
            args.cases,
            _today(args),
            jobs=args.jobs,
            decide_all=args.decide_all,
            progress=bar.update,
        )
    finally:
        bar.close()
    if args.json:
        print_json(report)
    else:
        print(render.rules_diff_report(report))
    return FAILED if args.fail_on_change and report["changed"] else OK
