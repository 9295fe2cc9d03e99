"""Replay a case file against a server (`remote`) or a rules directory (`in_process`,
`replay_file`).

A case exported with the lookups it was decided on (`sourced`) is decided on them again,
calling no source; with a registry to re-fetch from (`refetch`), its lookups are made again
under the consent recorded with them (impact analysis against today's data). A case without
`sourced` is decided on its own facts either way.

Both deciders return the same (outcome, decision dict) pair: the remote one as the client
gets it, the in-process one built to the same shape directly from the domain decision (see
wire.py), so a case file passes or fails the same way whichever side decides it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import parallel
from .cases import (
    Case,
    FileCheck,
    Problem,
    compare,
    parse_cases,
    parse_unit,
    read_data,
    unreadable,
)
from .client import CaseFileError, Client, ClientError
from .wire import wire_decision, wire_facts

if TYPE_CHECKING:  # imported where used: the client library loads the rules engine only when asked
    from miaopi_server.offline import Catalog, EmbeddedRegistry, Gathered

# outcome ("APPROVE", ..., or "INVALID_ARGUMENT" / "NOT_FOUND") and the decision, if any
DecideFn = Callable[[Case], tuple[str, dict[str, Any] | None]]
CASE_ERRORS = ("INVALID_ARGUMENT", "NOT_FOUND")


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    line: int
    item_code: str
    outcome: str
    mismatches: list[str]

    @property
    def passed(self) -> bool:
        return not self.mismatches


@dataclass
class ReplayReport:
    results: list[CaseResult] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def passed(self) -> int:
        return self.total - self.failed

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if r.mismatches]

    @property
    def outcomes(self) -> dict[str, int]:
        """How many cases got each outcome (what was decided, not what was expected)."""
        return dict(sorted(Counter(r.outcome for r in self.results).items()))

    @property
    def items(self) -> dict[str, dict[str, int]]:
        """item_code -> {"passed": n, "failed": m}, by item code."""
        out: dict[str, dict[str, int]] = {}
        for r in self.results:
            counts = out.get(r.item_code)
            if counts is None:
                counts = out[r.item_code] = {"passed": 0, "failed": 0}
            counts["failed" if r.mismatches else "passed"] += 1
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "passed": self.passed,
            "failed": self.failed,
            "outcomes": self.outcomes,
            "items": self.items,
            "failures": [
                {
                    "case_id": r.case_id,
                    "line": r.line,
                    "item_code": r.item_code,
                    "mismatches": r.mismatches,
                }
                for r in self.failures
            ],
            "cases": [
                {
                    "case_id": r.case_id,
                    "line": r.line,
                    "item_code": r.item_code,
                    "outcome": r.outcome,
                    "passed": not r.mismatches,
                }
                for r in self.results
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)


def replay(
    cases: Iterable[Case],
    decide_fn: DecideFn,
    progress: Callable[[Iterable[Case]], Iterable[Case]] | None = None,
) -> ReplayReport:
    """Decide every case and compare it with its expectation. Errors other than the two
    case errors (e.g. server unreachable) propagate: they say nothing about the cases.
    `progress`, when given, wraps the iteration (e.g. a progress bar)."""
    return ReplayReport([_check(c, decide_fn) for c in (progress(cases) if progress else cases)])


def _check(case: Case, decide_fn: DecideFn) -> CaseResult:
    outcome, decision = decide_fn(case)
    return CaseResult(
        case.case_id, case.line, case.item_code, outcome, compare(case.expected, outcome, decision)
    )


def remote(
    client: Client, refetch: bool = False, window_id: str = "", dry_run: bool = False
) -> DecideFn:
    """Decide over gRPC with `client`. Each case is a real decision, recorded and sealed, as
    the window it is sent as (`window_id` empty: the one the server authenticates the client
    as; a window principal may not name another), unless `dry_run`: then DryRunDecide decides
    it without recording a decision (a supervisor's or admin's credential; each dry run is an
    event on the record), on its recorded lookups as they are. For real decisions a server
    cannot be handed recorded lookups: with `refetch` a case's recorded consent is sent, so
    the server looks the data up again; without it the case is decided on its own facts."""

    def decide(case: Case) -> tuple[str, dict[str, Any] | None]:
        if dry_run:
            try:
                d = client.dry_run_decide(
                    case.item_code, case.facts, case.materials, window_id, sourced=case.sourced
                )
            except ClientError as exc:
                if exc.code in CASE_ERRORS:
                    return exc.code, None
                raise
            return d.get("outcome", ""), d
        consent = _consent(case) if refetch else ""
        try:
            # No request_id: an idempotency key would replay yesterday's answer, not decide.
            d = client.decide(
                case.item_code,
                case.facts,
                case.materials,
                window_id=window_id,
                consent=consent,
            )
        except ClientError as exc:
            if exc.code in CASE_ERRORS:
                return exc.code, None
            raise
        return d.get("outcome", ""), d

    return decide


def _consent(case: Case) -> str:
    consent = (case.sourced or {}).get("consent", "")
    return consent if isinstance(consent, str) else ""


def in_process(
    rulesets_dir: str | Path, today: dt.date | None = None, refetch: Path | None = None
) -> DecideFn:
    """Decide with the server's own catalog, no server needed. `today` stands in for the
    date of cases that omit application.date (default: today in Asia/Shanghai, as the
    server does); `refetch`, a registry data directory to look recorded cases up in again.
    Raises RuleFileError when the rules directory does not load."""
    # Imported here so that the client library does not load the rules engine unless asked.
    from miaopi_server.offline import EmbeddedRegistry, load_catalog

    registry = EmbeddedRegistry(refetch) if refetch else None
    return from_catalog(load_catalog(Path(rulesets_dir)), today, registry=registry)


def from_catalog(
    catalog: Catalog,
    today: dt.date | None = None,
    full: bool = True,
    registry: EmbeddedRegistry | None = None,
) -> DecideFn:
    """The in-process decider of `in_process`, on an already loaded miaopi_server Catalog.

    Its decisions have the shape of remote ones (wire.wire_decision) without what only a
    server adds: decision_id, decided_at, receipt (nothing recorded them). With full=False,
    only what cases.compare reads: outcome, missing_materials, outputs, the reasons' rule ids.
    A case's recorded lookups are used as they are, or with `registry` made again (see the
    module docstring)."""
    # Resolved once: an import statement per case costs more than the comparison.
    from miaopi_server.offline import (
        CaseInvalid,
        ItemNotFound,
        SourceUnavailable,
        shanghai_today,
    )

    decide_case = catalog.decide

    def decide(case: Case) -> tuple[str, dict[str, Any] | None]:
        try:
            # Facts typed exactly as the server receives them (NaN refused as it refuses it).
            facts = wire_facts(case.facts)
            day = today or shanghai_today(dt.datetime.now(dt.UTC))
            gathered = None
            if case.sourced is not None:
                gathered = _gathered(catalog, case, facts, day, registry)
            d = decide_case(case.item_code, facts, list(case.materials), day, gathered)
        except SourceUnavailable:
            return "UNAVAILABLE", None
        except CaseInvalid:
            return "INVALID_ARGUMENT", None
        except ClientError as exc:  # facts no Struct can carry (client.facts_struct)
            if exc.code != "INVALID_ARGUMENT":
                raise
            return "INVALID_ARGUMENT", None
        except ItemNotFound:
            return "NOT_FOUND", None
        return d.outcome, wire_decision(d, full)

    return decide


def _gathered(
    catalog: Catalog,
    case: Case,
    facts: dict[str, Any],
    day: dt.date,
    registry: EmbeddedRegistry | None,
) -> Gathered | None:
    """The lookups a case is decided on: recorded ones, or made again in `registry`."""
    from miaopi_server.offline import Gathered, gather

    if case.sourced is None:
        return None
    if registry is not None:
        item = catalog.select(case.item_code, facts, day).item
        return gather(item, facts, _consent(case), registry)
    try:
        return Gathered.from_json(case.sourced)
    except ValueError as exc:
        raise CaseFileError([f"case {case.case_id} (line {case.line}): {exc}"]) from None


def replay_file(
    path: str | Path,
    rulesets_dir: str | Path,
    today: dt.date | None = None,
    jobs: int = 0,
    progress: Callable[[int], None] | None = None,
    refetch: Path | None = None,
) -> ReplayReport:
    """replay(load_cases(path), in_process(rulesets_dir, today)), in worker processes when
    parallel.jobs_for(jobs, lines) says so; the report, or the CaseFileError, is the same
    either way. `progress(n)` is called as n more lines are done. Raises RuleFileError when
    the rules directory does not load (before any worker starts). `refetch`: a registry
    data directory to make recorded lookups again in (see the module docstring).

    The file is read once, here, and cut into units of whole lines (byte ranges); each unit's
    lines are parsed, decided and compared where the unit runs, and only what the report
    needs comes back (_Part), merged in file order. Forked workers inherit the bytes, the
    loaded catalog and every imported module: nothing is loaded, parsed or pickled twice."""
    from miaopi_server.offline import EmbeddedRegistry, RuleFileError, load_catalog, shanghai_today

    path = Path(path)
    data = read_data(path)
    # One day for the whole run, so that every worker decides as of the same one.
    today = today or shanghai_today(dt.datetime.now(dt.UTC))
    try:
        catalog = load_catalog(Path(rulesets_dir))
    except RuleFileError:
        parse_cases(path, data)  # a bad case file is reported first, as it always was
        raise
    try:
        n_jobs = parallel.jobs_for(jobs, data.count(b"\n") + (not data.endswith(b"\n")))
        if n_jobs == 1:
            registry = EmbeddedRegistry(refetch) if refetch else None
            try:
                decide = from_catalog(catalog, today, full=False, registry=registry)
                units = list(parallel.line_ranges(data, 250))  # small steps: a smooth bar
                parts: Iterable[_Part] = (_check_unit(path, data, u, decide) for u in units)
                return _merge(path, data, units, parts, progress)
            finally:
                if registry is not None:
                    registry.close()
        fork = parallel.forks()
        # A spawned worker (this process runs threads) cannot inherit the catalog: it loads
        # the rules itself.
        init = (path, str(rulesets_dir), catalog if fork else None, today, data, refetch)
        units = list(parallel.line_ranges(data, parallel.CHUNK))
        parts = parallel.imap(n_jobs, _init_worker, init, _work, units, fork=fork)
        return _merge(path, data, units, parts, progress)
    finally:
        catalog.close()


# What a unit of lines gives back: its cases' ids, lines, item codes and outcomes (in line
# order); the mismatches of those that failed, by position; the problems of its bad lines
# (cases.Problem); and whether a line was not UTF-8 (its other fields then empty).
_Part = tuple[list[str], list[int], list[str], list[str], dict[int, list[str]], list[Problem], bool]


def _check_unit(
    path: Path, data: bytes, unit: tuple[int, int, int, int], decide: DecideFn
) -> _Part:
    try:
        cases, problems = parse_unit(path, data, *unit[:3])
    except UnicodeDecodeError:
        return [], [], [], [], {}, [], True
    ids: list[str] = []
    lines: list[int] = []
    codes: list[str] = []
    outcomes: list[str] = []
    failed: dict[int, list[str]] = {}
    code_of: dict[str, str] = {}  # one str per item code: pickled once per unit, not per case
    for case in cases:
        try:
            outcome, decision = decide(case)
        except CaseFileError as exc:  # a case's recorded lookups that do not read
            problems += [(case.line, p) for p in exc.problems]
            continue
        mismatches = compare(case.expected, outcome, decision)
        if mismatches:
            failed[len(ids)] = mismatches
        ids.append(case.case_id)
        lines.append(case.line)
        codes.append(code_of.setdefault(case.item_code, case.item_code))
        outcomes.append(outcome)
    return ids, lines, codes, outcomes, failed, problems, False


def _merge(
    path: Path,
    data: bytes,
    units: list[tuple[int, int, int, int]],
    parts: Iterable[_Part],
    progress: Callable[[int], None] | None,
) -> ReplayReport:
    """The report from every unit's part, in file order; CaseFileError naming every bad line
    and every duplicate case_id in line order (as cases.checked does)."""
    results: list[CaseResult] = []
    check = FileCheck(path)
    for unit, (ids, lines, codes, outcomes, failed, problems, not_utf8) in zip(
        units, parts, strict=True
    ):
        if not_utf8:
            raise unreadable(path, data)
        check.problems += problems
        for i, (case_id, line) in enumerate(zip(ids, lines, strict=True)):
            if check.first(case_id, line):
                results.append(CaseResult(case_id, line, codes[i], outcomes[i], failed.get(i, [])))
        if progress:
            progress(unit[3])
    check.raise_problems()
    return ReplayReport(results)


# A worker's case file, its bytes and its decider (forked workers inherit them, see
# parallel.imap).
_WORKER: tuple[Path, bytes, DecideFn] | None = None


def _init_worker(
    path: Path,
    rulesets_dir: str,
    catalog: Catalog | None,
    today: dt.date,
    data: bytes,
    refetch: Path | None,
) -> None:
    global _WORKER
    from miaopi_server.offline import EmbeddedRegistry, load_catalog

    registry = EmbeddedRegistry(refetch) if refetch else None  # lives as long as the worker
    if catalog is None:
        catalog = load_catalog(Path(rulesets_dir))
    # Frozen (parallel.imap), the inherited heap is not walked by collections; what a unit
    # allocates is short-lived.
    _WORKER = (path, data, from_catalog(catalog, today, full=False, registry=registry))


def _work(unit: tuple[int, int, int, int]) -> _Part:
    assert _WORKER is not None
    path, data, decide = _WORKER
    return _check_unit(path, data, unit, decide)


def junit_xml(report: ReplayReport, source: str = "", name: str = "miaopi replay") -> bytes:
    """The report as JUnit XML (UTF-8): one <testsuite> per item code, one <testcase> per
    case (classname = item code, name = case id), a <failure> listing every mismatch."""
    import xml.etree.ElementTree as ET

    by_item: dict[str, list[CaseResult]] = {}
    for r in report.results:
        by_item.setdefault(r.item_code, []).append(r)
    root = ET.Element(
        "testsuites", name=name, tests=str(report.total), failures=str(report.failed), errors="0"
    )
    for code in sorted(by_item):
        results = by_item[code]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_xml_safe(code),
            tests=str(len(results)),
            failures=str(sum(not r.passed for r in results)),
            errors="0",
            skipped="0",
        )
        for r in results:
            case = ET.SubElement(
                suite, "testcase", classname=_xml_safe(code), name=_xml_safe(r.case_id)
            )
            if source:
                case.set("file", _xml_safe(source))
            case.set("line", str(r.line))
            if r.passed:
                continue
            mismatches = [_xml_safe(m) for m in r.mismatches]
            where = f"{source}:{r.line}" if source else f"line {r.line}"
            failure = ET.SubElement(case, "failure", message="; ".join(mismatches), type="mismatch")
            failure.text = "\n".join(
                [_xml_safe(f"{r.case_id} ({where}): decided {r.outcome}")]
                + [f"- {m}" for m in mismatches]
            )
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


# Characters XML 1.0 cannot carry at all, not even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)
