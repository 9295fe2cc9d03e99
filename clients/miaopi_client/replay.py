"""Replay a case file against a server (`remote`) or a rules directory (`in_process`).

Both deciders return the same (outcome, decision dict) pair, built by the same proto -> dict
conversion, so a case file passes or fails the same way whichever side decides it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .cases import Case, compare
from .client import Client, ClientError, decision_dict, facts_struct

# outcome ("APPROVE", ..., or "INVALID_ARGUMENT" / "NOT_FOUND") and the decision, if any
DecideFn = Callable[[Case], tuple[str, dict[str, Any] | None]]
CASE_ERRORS = ("INVALID_ARGUMENT", "NOT_FOUND")
REPLAY_WINDOW = "miaopi-replay"  # tags replayed cases in the server's logs


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
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        return self.total - self.passed

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    @property
    def outcomes(self) -> dict[str, int]:
        """How many cases got each outcome (what was decided, not what was expected)."""
        return dict(sorted(Counter(r.outcome for r in self.results).items()))

    @property
    def items(self) -> dict[str, dict[str, int]]:
        """item_code -> {"passed": n, "failed": m}."""
        out: dict[str, dict[str, int]] = {}
        for r in sorted(self.results, key=lambda r: r.item_code):
            counts = out.setdefault(r.item_code, {"passed": 0, "failed": 0})
            counts["passed" if r.passed else "failed"] += 1
        return out

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
                {k: v for k, v in asdict(r).items() if k != "mismatches"} | {"passed": r.passed}
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
    report = ReplayReport()
    for case in progress(cases) if progress else cases:
        outcome, decision = decide_fn(case)
        report.results.append(
            CaseResult(
                case.case_id,
                case.line,
                case.item_code,
                outcome,
                compare(case.expected, outcome, decision),
            )
        )
    return report


def remote(client: Client) -> DecideFn:
    """Decide over gRPC with `client`."""

    def decide(case: Case) -> tuple[str, dict[str, Any] | None]:
        try:
            # No request_id: an idempotency key would replay yesterday's answer, not decide.
            d = client.decide(case.item_code, case.facts, case.materials, window_id=REPLAY_WINDOW)
        except ClientError as exc:
            if exc.code in CASE_ERRORS:
                return exc.code, None
            raise
        return d.get("outcome", ""), d

    return decide


def in_process(rulesets_dir: str | Path, today: dt.date | None = None) -> DecideFn:
    """Decide with the server's own catalog, no server needed. `today` stands in for the
    date of cases that omit application.date (default: today in Asia/Shanghai, as the
    server does). Raises RuleFileError when the rules directory does not load."""
    # Imported here so that the client library does not load the rules engine unless asked.
    from miaopi_server.catalog import load_catalog

    return from_catalog(load_catalog(Path(rulesets_dir)), today)


def from_catalog(catalog: Any, today: dt.date | None = None) -> DecideFn:
    """The in-process decider of `in_process`, on an already loaded miaopi_server Catalog."""
    from miaopi_server import convert
    from miaopi_server.errors import CaseInvalid, ItemNotFound
    from miaopi_server.service import shanghai_today

    def decide(case: Case) -> tuple[str, dict[str, Any] | None]:
        now = dt.datetime.now(dt.UTC)
        try:
            # Through a Struct and back, so facts are typed exactly as the server receives
            # them (and NaN / infinities are refused as it refuses them).
            facts = convert.struct_to_dict(facts_struct(case.facts))
            d = catalog.decide(
                case.item_code, facts, list(case.materials), today or shanghai_today(now)
            )
        except CaseInvalid:
            return "INVALID_ARGUMENT", None
        except ItemNotFound:
            return "NOT_FOUND", None
        out = decision_dict(convert.decision(d, str(uuid.uuid4()), "", now))
        return out.get("outcome", ""), out

    return decide


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
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


# Characters XML 1.0 cannot carry at all, not even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)
