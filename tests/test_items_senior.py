"""GF00012000 高龄老人津贴: every policy row, age bands and boundaries, on the real engine."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from miaopi_server.errors import CaseInvalid
from tests.support import (
    AS_OF,
    SENIOR,
    SENIOR_MATERIALS,
    born_years_before,
    resident_id,
    with_facts,
)

CODE = "GF00012000"


def aged(years: int, days_short: int = 0) -> str:
    """An ID number for someone `years` old on AS_OF (minus a day when days_short=1)."""
    birth = dt.date.fromisoformat(born_years_before(AS_OF, years)) + dt.timedelta(days=days_short)
    return resident_id(birth.isoformat())


class TestPolicyRows:
    @pytest.mark.parametrize(
        ("changes", "outcome", "rules"),
        [
            ({}, "APPROVE", ["eligible"]),
            ({"applicant__id_number": aged(69)}, "REJECT", ["under_70"]),
            ({"applicant__hukou_region": "440604"}, "REJECT", ["not_local_hukou"]),
            ({"applicant__deceased": True}, "REJECT", ["deceased", "eligible"]),
            ({"applicant__receiving_allowance": True}, "REJECT", ["already_receiving", "eligible"]),
            ({"applicant__id_number": aged(105)}, "MANUAL_REVIEW", ["very_old_verify", "eligible"]),
            (
                {"applicant__id_number": aged(60), "applicant__hukou_region": "110105"},
                "REJECT",
                ["under_70", "not_local_hukou"],
            ),
        ],
    )
    def test_row(self, decide, changes, outcome, rules):
        """Each policy row contributes its reason and the precedence rule picks the outcome."""
        d = decide(CODE, with_facts(SENIOR, **changes), SENIOR_MATERIALS)
        assert d.outcome == outcome
        assert [r.rule_id for r in d.reasons] == rules

    def test_reject_reason_cites_legal_basis(self, decide):
        """A rejection carries its legal basis citation (行政许可法 Art. 38)."""
        d = decide(CODE, with_facts(SENIOR, applicant__id_number=aged(65)), SENIOR_MATERIALS)
        assert d.reasons[0].basis is not None
        assert d.reasons[0].basis.citation == "《南海区高龄老人津贴发放办法》第三条"
        assert dict(d.reasons[0].facts_read) == {"applicant.age": 65}


class TestAgeBoundaries:
    @pytest.mark.parametrize(
        ("years", "days_short", "outcome", "amount"),
        [
            (70, 0, "APPROVE", 30),  # 70th birthday on the application date
            (70, 1, "REJECT", None),  # 70th birthday is tomorrow
            (79, 0, "APPROVE", 30),
            (80, 0, "APPROVE", 100),
            (80, 1, "APPROVE", 30),
            (89, 0, "APPROVE", 100),
            (90, 0, "APPROVE", 200),
            (99, 0, "APPROVE", 200),
            (100, 0, "APPROVE", 300),
            (104, 0, "APPROVE", 300),
            (105, 0, "MANUAL_REVIEW", 300),  # outputs survive MANUAL_REVIEW, not REJECT
            (105, 1, "APPROVE", 300),
        ],
    )
    def test_band(self, decide, years, days_short, outcome, amount):
        """Bands are lower-bound inclusive and the birthday itself counts (周岁)."""
        d = decide(
            CODE, with_facts(SENIOR, applicant__id_number=aged(years, days_short)), SENIOR_MATERIALS
        )
        assert d.outcome == outcome
        assert d.outputs.get("monthly_amount") == amount

    @pytest.mark.parametrize(
        ("as_of", "age"),
        [("2026-02-28", 69), ("2026-03-01", 70), ("2028-02-28", 71), ("2028-02-29", 72)],
    )
    def test_leap_day_birthday(self, decide, as_of, age):
        """Born 29 February: a new age on 1 March in common years, on 29 February in leap years."""
        facts = with_facts(
            SENIOR, applicant__id_number=resident_id("1956-02-29"), application__date=as_of
        )
        d = decide(CODE, facts, SENIOR_MATERIALS)
        assert d.derived["applicant.age"] == age
        assert d.outcome == ("APPROVE" if age >= 70 else "REJECT")


class TestMaterials:
    def test_all_missing_listed_at_once(self, decide):
        """Every missing required material is listed in one decision (一次性告知)."""
        d = decide(CODE, with_facts(SENIOR, application__by_agent=True), ["id_card"])
        assert d.outcome == "REJECT"
        assert [m.id for m in d.missing_materials] == [
            "hukou_book",
            "bank_account",
            "agent_id_card",
            "power_of_attorney",
        ]
        assert "eligible" in [r.rule_id for r in d.reasons]  # other rules still report
        assert d.outputs == {}

    def test_agent_materials_only_for_agents(self, decide):
        """Agent materials are required only when the case is filed by an agent."""
        d = decide(CODE, SENIOR, SENIOR_MATERIALS)
        assert d.missing_materials == ()
        assert d.outcome == "APPROVE"

    def test_missing_material_reason_cites_basis(self, decide):
        """The materials notice cites its legal basis."""
        d = decide(CODE, SENIOR, ["id_card", "hukou_book"])
        notice = [r for r in d.reasons if r.rule_id == "material:bank_account"]
        assert notice and notice[0].basis is not None
        assert "行政许可法" in notice[0].basis.citation


class TestInvalidCases:
    def test_every_bad_field_named(self, decide):
        """A malformed case names every bad field at once."""
        facts = {
            "applicant": {
                "name": "",
                "id_number": "440605194001011234",
                "hukou_region": "44060",
                "deceased": "no",
                "nickname": "x",
            },
            "application": {"date": "2026-02-30"},
        }
        with pytest.raises(CaseInvalid) as info:
            decide(CODE, facts, ["id_card", "passport"])
        fields = {v.field for v in info.value.violations}
        assert fields == {
            "facts.applicant.name",
            "facts.applicant.id_number",
            "facts.applicant.hukou_region",
            "facts.applicant.deceased",
            "facts.applicant.nickname",
            "facts.application.date",
            "materials[1]",
        }

    @pytest.mark.parametrize(
        "id_number",
        [
            "44060519400101123X",  # checksum
            "440605194002301230",  # impossible date (checksum irrelevant: date checked first)
            resident_id("2027-01-01"),  # born after the application date
            "44060519400101123",
        ],  # 17 chars
    )
    def test_bad_id_numbers(self, decide, id_number):
        """ID numbers failing GB 11643 are input errors, not decisions."""
        with pytest.raises(CaseInvalid) as info:
            decide(CODE, with_facts(SENIOR, applicant__id_number=id_number), SENIOR_MATERIALS)
        assert [v.field for v in info.value.violations] == ["facts.applicant.id_number"]

    def test_derived_field_may_not_be_sent(self, decide):
        """applicant.age is computed by the server; sending it is an error."""
        with pytest.raises(CaseInvalid) as info:
            decide(CODE, with_facts(SENIOR, applicant__age=90), SENIOR_MATERIALS)
        assert [v.field for v in info.value.violations] == ["facts.applicant.age"]

    def test_null_optional_means_absent(self, decide):
        """null for an optional field is treated as not given (its default applies)."""
        facts = copy.deepcopy(SENIOR)
        facts["applicant"]["deceased"] = None
        d = decide(CODE, facts, SENIOR_MATERIALS)
        assert d.outcome == "APPROVE"
