"""`required_when` / `absent_when` on form fields: refused input names the field (every bad one
at once), GetItem shows the conditions, lint checks them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from miaopi_server.decision.catalog import load_catalog
from miaopi_server.edge.convert import item as item_message
from miaopi_server.errors import CaseInvalid
from miaopi_server.rules.directory import compile_directory
from miaopi_server.rules.lint import lint_directory
from tests.support import rule_file

TODAY = dt.date(2026, 11, 20)

ITEM = rule_file("""\
    form:
      child.status:
        type: enum
        label: 子女状况
        required: true
        values: {disabled: 伤残, deceased: 死亡}
      child.disability_grade:
        type: integer
        label: 伤残等级
        min: 1
        max: 10
        required_when: child.status == "disabled"
        absent_when: child.status != "disabled"
      child.death_date:
        type: date
        label: 死亡日期
        required_when: child.status == "deceased"
        absent_when: child.status == "disabled"
    rules:
      - id: eligible
        when: child.disability_grade <= 3 or child.death_date is present
        outcome: APPROVE
        message: 符合条件
        basis: art1
    """)


def write(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "rules"
    root.mkdir()
    (root / "t.yaml").write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def catalog(tmp_path):
    cat = load_catalog(write(tmp_path, ITEM))
    yield cat
    cat.close()


def refused(catalog, child: dict[str, object]) -> dict[str, str]:
    with pytest.raises(CaseInvalid) as info:
        catalog.decide("T0001", {"child": child}, [], TODAY)
    return {v.field: v.description for v in info.value.violations}


def test_required_when_holds_and_field_missing(catalog):
    bad = refused(catalog, {"status": "disabled"})
    assert list(bad) == ["facts.child.disability_grade"]
    assert "伤残等级" in bad["facts.child.disability_grade"]
    assert 'child.status == "disabled"' in bad["facts.child.disability_grade"]


def test_absent_when_holds_and_field_given(catalog):
    bad = refused(
        catalog, {"status": "deceased", "death_date": "2026-01-01", "disability_grade": 2}
    )
    assert list(bad) == ["facts.child.disability_grade"]
    assert "不应填写" in bad["facts.child.disability_grade"]


def test_every_bad_field_at_once(catalog):
    """Both conditional fields wrong in one case: both are named, with nothing else."""
    bad = refused(catalog, {"status": "disabled", "death_date": "2026-01-01"})
    assert set(bad) == {"facts.child.disability_grade", "facts.child.death_date"}


def test_a_bad_field_the_condition_reads_is_reported_once(catalog):
    """A condition on an invalid field is not judged: only the invalid field is named."""
    bad = refused(catalog, {"status": "unknown"})
    assert list(bad) == ["facts.child.status"]


@pytest.mark.parametrize(
    ("child", "outcome"),
    [
        ({"status": "disabled", "disability_grade": 2}, "APPROVE"),
        ({"status": "disabled", "disability_grade": 5}, "MANUAL_REVIEW"),  # no rule matched
        ({"status": "deceased", "death_date": "2026-01-01"}, "APPROVE"),
    ],
)
def test_valid_cases_are_decided(catalog, child, outcome):
    decision = catalog.decide("T0001", {"child": child}, [], TODAY)
    assert decision.outcome == outcome


def test_get_item_shows_the_conditions(catalog):
    """Windows render the form from GetItem: the conditions come as written."""
    msg = item_message(catalog.current("T0001", TODAY).item)
    fields = {f.path: f for f in msg.form_fields}
    grade = fields["child.disability_grade"]
    assert (grade.required, grade.required_when, grade.absent_when) == (
        False,
        'child.status == "disabled"',
        'child.status != "disabled"',
    )
    assert fields["child.status"].required_when == ""


def lint_codes(tmp_path: Path, text: str) -> list[tuple[str, str, int]]:
    return [(d.code, d.severity, d.line) for d in lint_directory(write(tmp_path, text))]


def test_clean_item_lints_clean(tmp_path):
    assert lint_codes(tmp_path, ITEM) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # an unknown field in the condition, located on the condition's line
        (
            'required_when: child.status == "disabled"',
            "required_when: child.statos == 1",
            ("MP301", "error", 22),
        ),
        # a syntax error in it
        (
            'required_when: child.status == "disabled"',
            "required_when: child.status = 1",
            ("MP202", "error", 22),
        ),
        # a field both required and required_when
        ("max: 10\n", "max: 10\n    required: true\n", ("MP105", "error", 23)),
        # a condition that can never hold
        (
            'absent_when: child.status == "disabled"',
            'absent_when: child.status == "disabled" and child.status == "deceased"',
            ("MP401", "warning", 28),
        ),
        # required and forbidden in the same case
        (
            'absent_when: child.status != "disabled"',
            "absent_when: child.status is present",
            ("MP407", "warning", 23),
        ),
    ],
)
def test_lint(tmp_path, old, new, expected):
    assert old in ITEM
    assert expected in lint_codes(tmp_path, ITEM.replace(old, new, 1))


def test_derived_fact_in_condition_is_refused(tmp_path):
    text = ITEM.replace(
        "rules:\n",
        "derived:\n  applicant.age: {function: age, from: applicant.id_number}\nrules:\n",
    ).replace(
        "  child.death_date:\n",
        "  applicant.id_number: {type: resident_id, required: true}\n  child.death_date:\n",
    )
    assert "applicant.age" in text
    text = text.replace(
        'required_when: child.status == "deceased"', "required_when: applicant.age > 60"
    )
    found = {d.code for d in compile_directory(write(tmp_path, text))[1]}
    assert "MP314" in found
