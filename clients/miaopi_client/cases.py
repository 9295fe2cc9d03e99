"""Replay case files (JSONL, see shared/items/README.md) and the check of one result.

Loading is strict and all-at-once: a typo in a key would otherwise silently check nothing, so
every bad line is collected and reported together, each as "file:line: problem".
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

from .client import CaseFileError

OUTCOMES = ("APPROVE", "REJECT", "MANUAL_REVIEW", "INVALID_ARGUMENT", "NOT_FOUND")
CASE_KEYS = frozenset({"case_id", "item_code", "facts", "materials", "expected", "note", "sourced"})
# outcome, missing_materials and outputs are the shared replay format (shared/items/README.md:
# `outputs` lists values that must match, others are not checked); the rest are miaopi's own.
EXPECTED_KEYS = frozenset(
    {
        "outcome",
        "missing_materials",
        "outputs",
        "outputs_exact",  # the outputs, all of them: {} means none
        "outputs_absent",  # output names that must not be there
        "rules_fired",  # exactly these policy rules matched
        "rules_fired_includes",  # at least these matched
        "rules_fired_excludes",  # none of these matched
        "data_reasons",  # exactly these findings about shared data (data:...), [] none
    }
)
_ID_LISTS = ("missing_materials", "outputs_absent", "rules_fired", "rules_fired_includes",
             "rules_fired_excludes", "data_reasons")  # fmt: skip
# The reasons shared data gives (decision/sourced.py): data:conflict:<fact>,
# data:no_record:<source>, data:unavailable:<source>. They are not policy rules: rules_fired*
# do not see them, data_reasons does.
DATA = "data:"
# Keys whose empty value asserts nothing at all (a check that cannot fail).
_VACUOUS_WHEN_EMPTY = ("outputs", "outputs_absent", "rules_fired_includes", "rules_fired_excludes")


@dataclass(frozen=True)
class Case:
    """One line of a case file; `line` is 1-based."""

    case_id: str
    item_code: str
    facts: dict[str, Any]
    materials: list[str]
    expected: dict[str, Any]
    line: int
    # What shared data said when the case was first decided (a recorded decision's `sourced`,
    # written by `miaopi audit export`): replays decide on it again, calling no source.
    sourced: dict[str, Any] | None = None


def _is_str_list(v: Any) -> bool:
    if not isinstance(v, list):
        return False
    # A loop, not all(): these lists are short, and this runs for every line.
    for x in v:  # noqa: SIM110
        if not isinstance(x, str):
            return False
    return True


_NO_UTF8 = "holds a lone surrogate (e.g. \\ud800), which no UTF-8 text can carry"


def _utf8(text: str) -> bool:
    """Whether `text` has a UTF-8 form: JSON's \\ud800 escapes make strings that have none,
    and a request, a report line or a terminal cannot carry them."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _problems(obj: Any) -> list[str]:
    """Everything wrong with one parsed line, in key order."""
    if not isinstance(obj, dict):
        return ["a case must be a JSON object"]
    out: list[str] = []
    if not obj.keys() <= CASE_KEYS:
        out.append(f"unknown key(s) {', '.join(sorted(set(obj) - CASE_KEYS))}")
    if not isinstance(obj.get("case_id", ""), str):
        out.append("case_id must be a string")
    elif not _utf8(obj.get("case_id", "")):
        out.append(f"case_id {_NO_UTF8}")
    if "item_code" not in obj:
        out.append("missing item_code")
    elif not isinstance(obj["item_code"], str) or not obj["item_code"]:
        out.append("item_code must be a non-empty string")
    elif not _utf8(obj["item_code"]):
        out.append(f"item_code {_NO_UTF8}")
    if not isinstance(obj.get("facts", {}), dict):
        out.append("facts must be a JSON object")
    if not _is_str_list(obj.get("materials", [])):
        out.append("materials must be a list of strings")
    elif not all(_utf8(m) for m in obj.get("materials", [])):
        out.append(f"materials {_NO_UTF8}")
    if "sourced" in obj and not (
        isinstance(obj["sourced"], dict) and isinstance(obj["sourced"].get("consent", ""), str)
    ):
        out.append("sourced must be a JSON object (a recorded decision's sourced)")
    if "expected" not in obj:
        out.append("missing expected")
        return out
    exp = obj["expected"]
    if not isinstance(exp, dict):
        return [*out, "expected must be a JSON object"]
    if not exp.keys() <= EXPECTED_KEYS:
        unknown = sorted(set(exp) - EXPECTED_KEYS)
        out.append(f"unknown key(s) in expected: {', '.join(unknown)}")
    if "outcome" in exp and exp["outcome"] not in OUTCOMES:
        out.append(f"expected.outcome must be one of {', '.join(OUTCOMES)}")
    for key in _ID_LISTS:
        if key in exp and not _is_str_list(exp[key]):
            out.append(f"expected.{key} must be a list of ids")
    if _is_str_list(exp.get("data_reasons")):
        not_data = [r for r in exp["data_reasons"] if not r.startswith(DATA)]
        if not_data:
            out.append(f"expected.data_reasons: not a data: reason: {', '.join(not_data)}")
    for key in ("outputs", "outputs_exact"):
        if key in exp and not isinstance(exp[key], dict):
            out.append(f"expected.{key} must be a JSON object")
    if "outputs" in exp and "outputs_exact" in exp:
        out.append("expected: give outputs (values that must match) or outputs_exact, not both")
    return out


def checks_nothing(expected: dict[str, Any]) -> list[str]:
    """The parts of an expectation that cannot fail, as messages; all of it when it checks
    nothing at all. `rules test` fails such a case; replay (shared format) only warns."""
    if not expected:
        return ["expected checks nothing: give outcome, outputs, rules_fired, ..."]
    return [
        f"expected.{key} is empty and checks nothing"
        + (" (outputs_exact: {} asserts that there are none)" if key == "outputs" else "")
        for key in _VACUOUS_WHEN_EMPTY
        if key in expected and not expected[key]
    ]


def unknown_rules(expected: dict[str, Any], rule_ids: set[str]) -> list[str]:
    """Rule ids an expectation names that the item has no rule for (a typo checks nothing)."""
    named = {
        r
        for key in ("rules_fired", "rules_fired_includes", "rules_fired_excludes")
        for r in expected.get(key, ())
    }
    return [
        f"expected names no rule of this item: {r}"
        + (" (data: reasons are checked by expected.data_reasons)" if r.startswith(DATA) else "")
        for r in sorted(named - rule_ids)
    ]


def checked_keys(expected: dict[str, Any]) -> list[str]:
    """What a case checks, for reports: each expectation key, outputs by name."""
    out = []
    for key in sorted(expected):
        if key == "outputs":
            out += [f"outputs.{name}" for name in sorted(expected["outputs"])]
        elif key not in _VACUOUS_WHEN_EMPTY or expected[key]:
            out.append(key)
    return out


def load_cases(path: str | Path) -> list[Case]:
    """Read a JSONL case file; blank lines are skipped. Raises CaseFileError naming every
    bad line (invalid JSON, missing item_code, wrong types, duplicate case_id)."""
    path = Path(path)
    return parse_cases(path, read_data(path))


def parse_cases(path: Path, data: bytes) -> list[Case]:
    """load_cases on the bytes of `path` already read."""
    # Parsing makes no reference cycles; collections would only walk the cases parsed so far,
    # again and again (more than half the time of a 100,000-case file).
    enabled = gc.isenabled()
    gc.disable()
    try:
        lines = split_lines(data)
        try:
            parsed = [parse_line(path, n, raw) for n, raw in enumerate(lines, start=1)]
        except UnicodeDecodeError:
            raise unreadable(path, data) from None
        return checked(path, parsed)
    finally:
        if enabled:
            gc.enable()


def count_lines(path: Path) -> int:
    """Lines in a file: about its number of cases (0 if it cannot be read: said later)."""
    try:
        with path.open("rb") as f:
            return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


def read_data(path: Path) -> bytes:
    """The bytes of a case file; CaseFileError when it cannot be read."""
    try:
        return path.read_bytes()  # at once: no newline translation
    except OSError as exc:
        raise CaseFileError([f"{path}: cannot read: {exc}"]) from None


def unreadable(path: Path, data: bytes) -> CaseFileError:
    """The error for a case file that is not UTF-8 (parse_line raised UnicodeDecodeError on
    one of its lines): the whole file's decoding error, as reading it at once gives it."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return CaseFileError([f"{path}: cannot read: {exc}"])
    raise AssertionError("unreadable() on a file that decodes")


def split_lines(data: bytes) -> list[bytes]:
    """The lines of a case file (or of a part of it that ends at a line's end), without their
    \n. JSON Lines ends lines at \n (or \r\n) only: str.splitlines would also split inside
    a string at U+2028, U+0085 and the like, which JSON leaves unescaped. A line's \r is left
    for parse_line (JSON reads it as white space)."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


# orjson reads an integer beyond 64 bits as a float (json keeps it an int): a float of at least
# this size in `expected` or `sourced` may have been written as an integer, so such a line is
# read by json again. Facts need no look: the wire makes every fact number a double anyway
# (wire.wire_facts, client.facts_struct), and both parsers round to the same double.
_INT64 = float(2**63)


def parse_line(path: Path, n: int, raw: bytes | str) -> Case | str | None:
    """Line n (1-based) of a case file: its Case, its problems as one "file:line: ..." text,
    or None when blank. Duplicate case_ids are for `checked` to find. Raises
    UnicodeDecodeError when the line is not UTF-8 (see `unreadable`).

    orjson reads valid lines (about twice as fast as json); a line it refuses, or may read
    differently, is read by json, so that errors, NaN, huge integers and lone surrogates are
    exactly what they always were."""
    if raw:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            if type(obj) is not dict or not (
                _maybe_int_beyond_64_bits(obj.get("expected"))
                or _maybe_int_beyond_64_bits(obj.get("sourced"))
            ):
                return _case(path, n, obj)
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    text = text.removesuffix("\r")
    if not text or text.isspace():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"{path}:{n}: invalid JSON: {exc.msg} (column {exc.colno})"
    except (ValueError, RecursionError) as exc:  # valid JSON that Python will not build
        return f"{path}:{n}: invalid JSON: {unbuildable(exc)}"
    return _case(path, n, obj)


def unbuildable(exc: ValueError | RecursionError) -> str:
    """Why json.loads could not build a document that parses (it raised these as tracebacks
    from `rules test`, `replay` and `decide --facts`): an integer of more than 4,300 digits
    (int()'s limit), or arrays and objects nested deeper than Python's recursion."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return "a number with too many digits"


def _maybe_int_beyond_64_bits(v: Any) -> bool:
    t = type(v)
    if t is dict:
        values = v.values()
    elif t is list:
        values = v
    else:
        return t is float and abs(v) >= _INT64
    for x in values:  # a loop, not any(): these are small, and this runs for every line
        t = type(x)
        if t is float:
            if abs(x) >= _INT64:
                return True
        elif (t is dict or t is list) and _maybe_int_beyond_64_bits(x):
            return True
    return False


def _case(path: Path, n: int, obj: Any) -> Case | str:
    bad = _problems(obj)
    if bad:
        return f"{path}:{n}: {'; '.join(bad)}"
    return Case(
        obj.get("case_id") or f"line-{n}",  # ids name failures; a line number will do
        obj["item_code"],
        obj.get("facts", {}),
        obj.get("materials", []),
        obj["expected"],
        n,
        obj.get("sourced"),
    )


# A line number and its problem, as parse_line words it.
Problem = tuple[int, str]


def parse_unit(
    path: Path, data: bytes, start: int, stop: int, first: int
) -> tuple[list[Case], list[Problem]]:
    """The cases and the problems of the lines data[start:stop] (whole lines, the first being
    line `first` of the file: see parallel.line_ranges). Duplicate case_ids are for a
    FileCheck to find. Raises UnicodeDecodeError when a line is not UTF-8 (see `unreadable`)."""
    cases: list[Case] = []
    problems: list[Problem] = []
    # As in parse_cases: no reference cycles here, and collections would walk the unit's
    # cases again and again (two thirds of the time for 10,000 lines, little for 1,000).
    enabled = gc.isenabled()
    gc.disable()
    try:
        for n, raw in enumerate(split_lines(data[start:stop]), start=first):
            case = parse_line(path, n, raw)
            if isinstance(case, Case):
                cases.append(case)
            elif case is not None:
                problems.append((n, case))
    finally:
        if enabled:
            gc.enable()
    return cases, problems


class FileCheck:
    """`checked` for a file read in units (parse_unit, in worker processes or not), fed in
    file order: their problems, and every case's id to find duplicates. `raise_problems` at
    the end raises the CaseFileError `checked` would raise for the whole file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self.cases = 0
        self._seen: dict[str, int] = {}

    def first(self, case_id: str, line: int) -> bool:
        """Whether a case is the first with its id (else its line's problem is noted)."""
        first = self._seen.setdefault(case_id, line)
        if first != line:
            self.problems.append(
                (line, f"{self.path}:{line}: duplicate case_id {case_id!r} (first on line {first})")
            )
            return False
        self.cases += 1
        return True

    def raise_problems(self) -> None:
        problems = self.problems
        if not problems and not self.cases:
            problems = [(0, f"{self.path}: no cases")]
        if problems:
            problems.sort(key=lambda p: p[0])  # stable: a line's own problems keep their order
            raise CaseFileError([p for _, p in problems])


class _Numbered(Protocol):
    @property
    def case_id(self) -> str: ...
    @property
    def line(self) -> int: ...


C = TypeVar("C", bound=_Numbered)


def checked(path: Path, parsed: Iterable[C | str | None]) -> list[C]:
    """What parse_line gave for every line of a file (or anything with the case_id and line
    of those cases), in order, without the blank lines. Raises CaseFileError naming every
    problem and every duplicate case_id, or that the file has no case at all."""
    out: list[C] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for p in parsed:
        if p is None:
            continue
        if isinstance(p, str):
            problems.append(p)
            continue
        first = seen.setdefault(p.case_id, p.line)
        if first != p.line:
            problems.append(
                f"{path}:{p.line}: duplicate case_id {p.case_id!r} (first on line {first})"
            )
            continue
        out.append(p)
    if not problems and not out:
        problems.append(f"{path}: no cases")
    if problems:
        raise CaseFileError(problems)
    return out


def same_value(want: Any, got: Any) -> bool:
    """Equality where numbers compare by value (100 == 100.0: Struct numbers are doubles),
    but booleans are never numbers."""
    if isinstance(want, bool) or isinstance(got, bool):
        return isinstance(want, bool) and isinstance(got, bool) and want == got
    if isinstance(want, int | float) and isinstance(got, int | float):
        return math.isclose(want, got, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(want, dict) and isinstance(got, dict):
        return want.keys() == got.keys() and all(same_value(want[k], got[k]) for k in want)
    if isinstance(want, list) and isinstance(got, list):
        return len(want) == len(got) and all(
            same_value(a, b) for a, b in zip(want, got, strict=True)
        )
    return bool(want == got)


def _show(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return json.dumps(v, ensure_ascii=False)


def compare(
    expected: dict[str, Any], actual_outcome: str, decision: dict[str, Any] | None
) -> list[str]:
    """Mismatches between what a case expects and what was decided; [] when it passes.
    Only keys present in `expected` are checked."""
    out: list[str] = []
    if "outcome" in expected and expected["outcome"] != actual_outcome:
        out.append(f"outcome: expected {expected['outcome']}, got {actual_outcome}")
    if decision is None:
        # An error answer carries no decision, so nothing else can match.
        unchecked = [k for k in sorted(EXPECTED_KEYS - {"outcome"}) if k in expected]
        if unchecked:
            out.append(f"{', '.join(unchecked)}: expected, but {actual_outcome} has no decision")
        return out
    if "missing_materials" in expected:
        want = set(expected["missing_materials"])
        got = {m.get("id", "") for m in decision.get("missing_materials", [])}
        if want != got:
            parts = [f"missing_materials: expected {sorted(want)}, got {sorted(got)}"]
            if want - got:
                parts.append(f"not listed: {', '.join(sorted(want - got))}")
            if got - want:
                parts.append(f"unexpected: {', '.join(sorted(got - want))}")
            out.append("; ".join(parts))
    outputs = decision.get("outputs", {})
    wanted = expected.get("outputs_exact", expected.get("outputs", {}))
    for name, want_value in wanted.items():
        if name not in outputs:
            out.append(f"outputs.{name}: expected {_show(want_value)}, absent")
        elif not same_value(want_value, outputs[name]):
            out.append(f"outputs.{name}: expected {_show(want_value)}, got {_show(outputs[name])}")
    if "outputs_exact" in expected:
        extra = sorted(set(outputs) - set(expected["outputs_exact"]))
        out += [f"outputs.{name}: not expected, got {_show(outputs[name])}" for name in extra]
    present = sorted(set(expected.get("outputs_absent", ())) & set(outputs))
    out += [f"outputs.{name}: expected absent, got {_show(outputs[name])}" for name in present]
    out += _compare_rules(expected, fired_rules(decision))
    if "data_reasons" in expected:
        want, got = set(expected["data_reasons"]), data_reasons(decision)
        if want != got:
            out.append(
                f"data_reasons: expected {sorted(want)}, got {sorted(got)}"
                + (f"; not given: {', '.join(sorted(want - got))}" if want - got else "")
                + (f"; also given: {', '.join(sorted(got - want))}" if got - want else "")
            )
    return out


def fired_rules(decision: dict[str, Any]) -> set[str]:
    """The policy rules that matched: the decision's reasons, without the materials notices,
    the findings about shared data and the no-rule-matched reason."""
    return {
        r.get("rule_id", "")
        for r in decision.get("reasons", [])
        if not r.get("rule_id", "").startswith(("material:", DATA))
        and r.get("rule_id") != "no_rule_matched"
    }


def data_reasons(decision: dict[str, Any]) -> set[str]:
    """The findings about shared data the decision gives as reasons (data:...)."""
    return {
        r.get("rule_id", "")
        for r in decision.get("reasons", [])
        if r.get("rule_id", "").startswith(DATA)
    }


def _compare_rules(expected: dict[str, Any], fired: set[str]) -> list[str]:
    out = []
    if "rules_fired" in expected and set(expected["rules_fired"]) != fired:
        want = set(expected["rules_fired"])
        out.append(
            f"rules_fired: expected {sorted(want)}, got {sorted(fired)}"
            + (f"; did not fire: {', '.join(sorted(want - fired))}" if want - fired else "")
            + (f"; also fired: {', '.join(sorted(fired - want))}" if fired - want else "")
        )
    missing = sorted(set(expected.get("rules_fired_includes", ())) - fired)
    if missing:
        out.append(f"rules_fired_includes: did not fire: {', '.join(missing)}")
    unwanted = sorted(set(expected.get("rules_fired_excludes", ())) & fired)
    if unwanted:
        out.append(f"rules_fired_excludes: fired: {', '.join(unwanted)}")
    return out
