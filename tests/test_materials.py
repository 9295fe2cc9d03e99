"""Materials in decisions: required, deferrable and optional, with and without a `when`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from miaopi_server.decision.catalog import load_catalog
from tests.support import rule_file

TODAY = dt.date(2026, 6, 15)

ITEM = rule_file("""\
form:
  person.age: {type: integer, label: 年龄, required: true}
materials:
  - {id: form, name: 申请表, need: required}
  - {id: photo, name: 照片, need: optional, when: person.age >= 80}
  - {id: proxy, name: 委托书, need: required, when: person.age >= 90}
  - {id: later, name: 补充证明, need: deferrable}
materials_basis: art1
rules:
  - id: old
    when: person.age >= 60
    outcome: APPROVE
    message: 符合条件
    basis: art1
""")


def write(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "rules"
    root.mkdir()
    (root / "t.yaml").write_text(text, encoding="utf-8")
    return root


def decide(root: Path, age: int, materials: list[str]):
    catalog = load_catalog(root)
    try:
        return catalog.decide("T0001", {"person": {"age": age}}, materials, TODAY)
    finally:
        catalog.close()


class TestMaterials:
    def test_optional_material_with_a_condition_decides(self, tmp_path):
        """An optional material with a `when` is never missing, whether its condition holds
        or not (it used to make every decision of its item fail with KeyError 'm:photo')."""
        root = write(tmp_path, ITEM)
        for age in (70, 85):
            d = decide(root, age, ["form", "later"])
            assert d.outcome == "APPROVE"
            assert d.missing_materials == ()

    def test_required_material_with_a_condition_is_missing_only_when_it_holds(self, tmp_path):
        """A required material's `when` decides whether it is asked for; the reason quotes it."""
        root = write(tmp_path, ITEM)
        assert decide(root, 85, ["form", "later"]).outcome == "APPROVE"
        d = decide(root, 95, ["form", "later"])
        assert d.outcome == "REJECT"
        assert [m.id for m in d.missing_materials] == ["proxy"]
        reason = next(r for r in d.reasons if r.rule_id == "material:proxy")
        assert reason.message == "缺少必要材料：委托书（person.age >= 90）"
        assert reason.facts_read == (("person.age", 95),)

    def test_deferrable_material_is_pending_not_missing(self, tmp_path):
        """A deferrable material not submitted leaves the case approvable, listed as pending."""
        root = write(tmp_path, ITEM)
        d = decide(root, 70, ["form"])
        assert d.outcome == "APPROVE"
        assert [m.id for m in d.pending_materials] == ["later"]
        assert d.missing_materials == ()
