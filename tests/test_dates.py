"""Date arithmetic in conditions: periods counted as 民法典 Art. 200-204 count them, typed at
lint time, computed in Python before the engine, and the same in the compiler and the
reference semantics; bare dates get a located hint to quote them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from miaopi_server.decision.catalog import load_catalog
from miaopi_server.lang.compiler import Compares, FieldSpec, compile_condition
from miaopi_server.lang.dates import days_between, shift, shift_text
from miaopi_server.lang.parser import ExprSyntaxError, parse
from miaopi_server.lang.probes import MISSING, ProbeTable
from miaopi_server.lang.reference import evaluate
from miaopi_server.rules.directory import compile_directory
from tests.support import rule_file

FIELDS = {
    "a.n": FieldSpec("a.n", "integer", False, compares=Compares.NUMBER),
    "a.s": FieldSpec("a.s", "string", False, compares=Compares.TEXT),
    "a.d": FieldSpec("a.d", "date", False, compares=Compares.DATE),
    "a.d2": FieldSpec("a.d2", "date", True, compares=Compares.DATE),
    "a.l": FieldSpec("a.l", "string_list", True, compares=Compares.TEXT_LIST),
}
LISTS: dict[str, tuple[str, ...]] = {}


@pytest.mark.parametrize(
    ("start", "amount", "unit", "end"),
    [
        # years: 29 February has no corresponding day in a common year -> 28 February
        ("2024-02-29", 1, "year", "2025-02-28"),
        ("2024-02-29", -1, "year", "2023-02-28"),
        ("2024-02-29", 4, "year", "2028-02-29"),
        ("2023-02-28", 1, "year", "2024-02-28"),  # the corresponding day exists: no month end
        ("2025-02-28", -1, "year", "2024-02-28"),
        ("2024-12-31", 1, "year", "2025-12-31"),
        # months: a day the month lacks ends on its last day
        ("2025-03-31", -1, "month", "2025-02-28"),
        ("2024-03-31", -1, "month", "2024-02-29"),
        ("2024-01-31", 1, "month", "2024-02-29"),
        ("2025-01-31", 1, "month", "2025-02-28"),
        ("2024-05-31", -1, "month", "2024-04-30"),
        ("2024-12-31", 2, "month", "2025-02-28"),
        ("2024-11-30", 2, "month", "2025-01-30"),
        ("2025-01-15", -13, "month", "2023-12-15"),
        # days: plain calendar days across month, leap-day and year ends
        ("2024-12-31", 1, "day", "2025-01-01"),
        ("2025-01-01", -1, "day", "2024-12-31"),
        ("2024-02-28", 1, "day", "2024-02-29"),
        ("2023-02-28", 1, "day", "2023-03-01"),
        ("2024-03-01", -30, "day", "2024-01-31"),
    ],
)
def test_period_boundaries(start, amount, unit, end):
    """Each boundary of Art. 200-204 counting: month ends, 29 February, year ends."""
    assert shift_text(start, amount, unit) == end


def test_off_the_calendar_has_no_value():
    """A date moved outside years 1..9999 has no value (the language treats it as missing)."""
    assert shift(dt.date(1, 1, 1), -1, "day") is None
    assert shift(dt.date(9999, 12, 31), 1, "year") is None
    assert shift(dt.date(2024, 1, 1), 10**12, "month") is None
    assert shift(dt.date(2024, 1, 1), 10**12, "day") is None


def test_days_between_counts_whole_days_either_way():
    """The first day is not counted (Art. 201); the order of the two dates does not matter."""
    assert days_between("2024-01-01", "2024-01-31") == 30
    assert days_between("2024-01-31", "2024-01-01") == 30
    assert days_between("2024-02-28", "2024-03-01") == 2
    assert days_between("2023-02-28", "2023-03-01") == 1
    assert days_between("2024-12-31", "2025-01-01") == 1
    assert days_between("2024-05-05", "2024-05-05") == 0


def holds(source: str, values: dict[str, object]) -> tuple[bool, bool]:
    """(compiled probe, reference) verdicts of one comparison with date arithmetic."""
    probes = ProbeTable()
    compiled = compile_condition(parse(source), FIELDS, LISTS, probes)
    assert compiled.errors == []
    [(key, probe)] = probes.items()
    assert compiled.condition == {f"_p.{key}": True}
    get = lambda p: values.get(p, MISSING)  # noqa: E731
    return bool(probe.compute(get)), evaluate(parse(source), get, LISTS)


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("a.d <= a.d2 - 1 year", {"a.d": "2024-02-28", "a.d2": "2025-02-28"}, True),
        ("a.d <= a.d2 - 1 year", {"a.d": "2024-02-29", "a.d2": "2025-02-28"}, False),
        ("a.d <= a.d2 - 1 year", {"a.d": "2024-02-29", "a.d2": "2025-03-01"}, True),
        ("a.d <= a.d2 - 1 year", {"a.d2": "2025-03-01"}, False),  # missing fact: false
        ("not (a.d <= a.d2 - 1 year)", {"a.d2": "2025-03-01"}, True),
        ("not (a.d <= a.d2 - 1 year)", {"a.d": "2024-02-29", "a.d2": "2025-02-28"}, True),
        ("a.d >= a.d2 - 30 days", {"a.d": "2024-01-31", "a.d2": "2024-03-01"}, True),
        ("a.d >= a.d2 - 30 days", {"a.d": "2024-01-30", "a.d2": "2024-03-01"}, False),
        ("a.d >= a.d2 -30 days", {"a.d": "2024-01-30", "a.d2": "2024-03-01"}, False),
        ("days between a.d and a.d2 <= 30", {"a.d": "2024-12-02", "a.d2": "2025-01-01"}, True),
        ("days between a.d and a.d2 <= 30", {"a.d": "2024-12-01", "a.d2": "2025-01-01"}, False),
        ('a.d2 + 1 month == "2024-02-29"', {"a.d2": "2024-01-31"}, True),
        ('a.d2 - 1 month + 1 day == "2024-03-01"', {"a.d2": "2024-03-31"}, True),
        ('"2024-02-29" + 1 year == a.d2', {"a.d2": "2025-02-28"}, True),
        ("a.d2 - 1 year < a.d - 1 month", {"a.d2": "2025-01-31", "a.d": "2024-02-29"}, False),
        ("a.d2 - 1 year < a.d - 1 month", {"a.d2": "2025-01-28", "a.d": "2024-02-29"}, True),
    ],
)
def test_comparisons_with_periods(source, values, expected):
    """The compiled probe and the reference semantics agree with the law's counting."""
    assert holds(source, values) == (expected, expected)


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ("a.n - 1 year > a.d", "MP313"),  # a period added to a number
        ('a.s + 1 day == "x"', "MP313"),
        ('"abc" + 1 day < a.d', "MP313"),
        ("a.d - 1 year > 5", "MP303"),  # a date compared with a number
        ('days between a.d and a.d2 == "2024-01-01"', "MP303"),
        ("days between a.d and a.n > 3", "MP313"),
        ("days between a.d and a.d2 > a.d", "MP303"),
        ('"2024-01-01" + 1 year < "2025-01-01"', "MP308"),
        ('any a.l == "2024-01-01" + 1 day', "MP310"),
        ("a.zz - 1 year < a.d", "MP301"),
    ],
)
def test_nonsense_is_a_located_type_error(source, code):
    """Arithmetic on the wrong type is refused at lint time with a stable code."""
    compiled = compile_condition(parse(source), FIELDS, LISTS, ProbeTable())
    assert [e.code for e in compiled.errors] == [code]


@pytest.mark.parametrize(
    ("source", "code", "pos"),
    [
        ("a.d < 1933-01-01", "MP209", 6),
        ("a.d < a.d2 - 1.5 years", "MP204", 13),
        ("a.d < a.d2 - 1 fortnight", "MP204", 15),
        ("a.d < a.d2 - year", "MP204", 13),
        ("a.d < a.d2 +", "MP204", 12),
        ("days between a.d a.d2 > 1", "MP204", 17),
        ("a.d - 1 year", "MP204", 12),
    ],
)
def test_syntax_errors(source, code, pos):
    """A bare date is told to be quoted (not the misleading "join conditions with and/or")."""
    with pytest.raises(ExprSyntaxError) as info:
        parse(source)
    assert (info.value.code, info.value.pos) == (code, pos)
    if code == "MP209":
        assert '"1933-01-01"' in info.value.message


POLICY = rule_file("""\
    form:
      applicant.hukou_since: {type: date, label: 本地户籍起始日期, required: true}
      event.date: {type: date, label: 事件发生日期, required: true}
    rules:
      - id: hukou_too_recent
        when: applicant.hukou_since > application.date - 1 year
        outcome: REJECT
        message: 本地户籍未满一年
        basis: art1
      - id: event_too_old
        when: days between event.date and application.date > 30 or event.date > application.date
        outcome: REJECT
        message: 事件不在申请日前30日内
        basis: art1
      - id: eligible
        when: >-
          applicant.hukou_since <= application.date - 1 year
          and event.date >= application.date - 30 days and event.date <= application.date
        outcome: APPROVE
        message: 符合条件
        basis: art1
    """)


@pytest.mark.parametrize(
    ("hukou_since", "event", "applied", "outcome"),
    [
        ("2024-02-28", "2025-02-01", "2025-02-28", "APPROVE"),
        ("2024-02-29", "2025-02-01", "2025-02-28", "REJECT"),  # one year ends on 28 February
        ("2024-02-28", "2025-01-29", "2025-02-28", "APPROVE"),  # 30 days before, to the day
        ("2024-02-28", "2025-01-28", "2025-02-28", "REJECT"),  # 31 days before
        ("2024-02-28", "2025-03-01", "2025-02-28", "REJECT"),  # after the application
        ("2024-02-29", "2025-02-01", "2025-03-01", "APPROVE"),
    ],
)
def test_a_rule_file_encodes_date_windows(tmp_path: Path, hukou_since, event, applied, outcome):
    """The issue's policy, written in the rule file: no window-sent `date_minus_1_year`."""
    root = tmp_path / "rules"
    root.mkdir()
    (root / "t.yaml").write_text(POLICY, encoding="utf-8")
    assert compile_directory(root)[1] == []
    catalog = load_catalog(root)
    try:
        facts = {
            "applicant": {"hukou_since": hukou_since},
            "event": {"date": event},
            "application": {"date": applied},
        }
        decision = catalog.decide("T0001", facts, [], dt.date(2026, 1, 1))
        assert decision.outcome == outcome
    finally:
        catalog.close()


def test_lint_locates_arithmetic_type_errors(tmp_path: Path):
    """`rules lint` reports a period added to a number at the rule, with its code."""
    root = tmp_path / "rules"
    root.mkdir()
    text = POLICY.replace(
        "applicant.hukou_since > application.date - 1 year", "application.date - 1 year > 3"
    ).replace("event.date >= application.date - 30 days", "days between event.date and 5 > 1")
    (root / "t.yaml").write_text(text, encoding="utf-8")
    found = [(d.code, d.message) for d in compile_directory(root)[1] if d.severity == "error"]
    assert [c for c, _ in found] == ["MP303", "MP313"]
    assert "日期与数字不能比较" in found[0][1]


def test_rules_md_month_end_table_is_what_the_code_does():
    """The worked examples in docs/RULES.md are the arithmetic the server does."""
    text = (Path(__file__).parent.parent / "docs" / "RULES.md").read_text(encoding="utf-8")
    header = "| date | `+ 1 year` | `- 1 year` | `- 1 month` | `+ 1 month` |"
    rows = text.split(header, 1)[1].split("\n\n", 1)[0].strip().splitlines()[1:]
    assert len(rows) == 3
    steps = [(1, "year"), (-1, "year"), (-1, "month"), (1, "month")]
    for row in rows:
        start, *ends = [c.strip() for c in row.strip("|").split("|")]
        assert [shift_text(start, n, u) for n, u in steps] == ends, row
