"""GF00034001 困难残疾人生活补贴: every policy row and the expiry boundary."""

from __future__ import annotations

import pytest

from miaopi_server.errors import CaseInvalid
from tests.support import AS_OF, DISABILITY, DISABILITY_MATERIALS, with_facts

CODE = "GF00034001"
VETERAN_MATERIALS = [
    "id_card",
    "hukou_book",
    "bank_account",
    "veteran_card",
    "household_certificate",
]


class TestPolicyRows:
    @pytest.mark.parametrize(
        ("changes", "materials", "outcome", "rules", "amount"),
        [
            ({}, DISABILITY_MATERIALS, "APPROVE", ["eligible"], 200),
            (
                {"household__status": "dibao_edge"},
                DISABILITY_MATERIALS,
                "APPROVE",
                ["eligible"],
                150,
            ),
            (
                {"applicant__hukou_region": "440606"},
                DISABILITY_MATERIALS,
                "REJECT",
                ["not_local_hukou"],
                None,
            ),
            (
                {"household__status": "none"},
                DISABILITY_MATERIALS[:4],
                "REJECT",
                ["not_low_income"],
                None,
            ),
            (
                {"household__status": "tekun"},
                DISABILITY_MATERIALS[:4],
                "REJECT",
                ["tekun_supported"],
                None,
            ),
            (
                {"disability__certificate_expiry": "2026-11-19"},
                DISABILITY_MATERIALS,
                "REJECT",
                ["certificate_expired"],
                None,
            ),
            (
                {"applicant__receiving_subsidy": True},
                DISABILITY_MATERIALS,
                "REJECT",
                ["already_receiving", "eligible"],
                None,
            ),
            (
                {"disability__certificate_type": "veteran_card"},
                VETERAN_MATERIALS,
                "MANUAL_REVIEW",
                ["veteran_check", "eligible"],
                200,
            ),
        ],
    )
    def test_row(self, decide, changes, materials, outcome, rules, amount):
        """Each policy row contributes its reason; amounts only when not rejected."""
        d = decide(CODE, with_facts(DISABILITY, **changes), materials)
        assert d.missing_materials == ()
        assert (d.outcome, [r.rule_id for r in d.reasons]) == (outcome, rules)
        assert d.outputs.get("monthly_amount") == amount

    def test_certificate_expiring_on_application_date_is_valid(self, decide):
        """A certificate expiring on the application date itself is still valid."""
        d = decide(
            CODE, with_facts(DISABILITY, disability__certificate_expiry=AS_OF), DISABILITY_MATERIALS
        )
        assert d.outcome == "APPROVE"

    def test_review_due_in_promised_working_days(self, decide):
        """MANUAL_REVIEW is due 10 working days after the application date (promised limit)."""
        d = decide(
            CODE,
            with_facts(DISABILITY, disability__certificate_type="veteran_card"),
            VETERAN_MATERIALS,
        )
        assert d.review_due is not None and d.review_due.isoformat() == "2026-12-04"
        assert d.review_due_estimated is False


class TestConditionalMaterials:
    @pytest.mark.parametrize(
        ("changes", "missing"),
        [
            ({}, ["disability_card", "household_certificate"]),
            (
                {"disability__certificate_type": "veteran_card"},
                ["veteran_card", "household_certificate"],
            ),
            ({"household__status": "none"}, ["disability_card"]),
            (
                {"application__by_agent": True},
                ["disability_card", "household_certificate", "agent_id_card", "power_of_attorney"],
            ),
        ],
    )
    def test_required_when_condition_holds(self, decide, changes, missing):
        """Conditional materials are required exactly when their condition holds."""
        d = decide(
            CODE, with_facts(DISABILITY, **changes), ["id_card", "hukou_book", "bank_account"]
        )
        assert [m.id for m in d.missing_materials] == missing
        assert d.outcome == "REJECT"


class TestValidation:
    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"disability__grade": 2.5}, "facts.disability.grade"),
            ({"disability__grade": 5}, "facts.disability.grade"),
            ({"disability__grade": "2"}, "facts.disability.grade"),
            ({"household__status": "poor"}, "facts.household.status"),
            (
                {"disability__certificate_expiry": "2030/01/01"},
                "facts.disability.certificate_expiry",
            ),
            ({"disability__certificate_number": "x" * 31}, "facts.disability.certificate_number"),
        ],
    )
    def test_bad_field(self, decide, changes, field):
        """Integers refuse fractions, enums refuse unknown values, dates need YYYY-MM-DD."""
        with pytest.raises(CaseInvalid) as info:
            decide(CODE, with_facts(DISABILITY, **changes), DISABILITY_MATERIALS)
        assert [v.field for v in info.value.violations] == [field]

    def test_integer_given_as_float(self, decide):
        """Struct numbers are doubles: 3.0 is a valid integer."""
        d = decide(CODE, with_facts(DISABILITY, disability__grade=3.0), DISABILITY_MATERIALS)
        assert d.outcome == "APPROVE"
