"""XK00051000 个体工商户设立登记: every policy row, name rules, scope lists, 容缺后补."""

from __future__ import annotations

import pytest

from tests.support import (
    AS_OF,
    BUSINESS,
    BUSINESS_MATERIALS,
    born_years_before,
    resident_id,
    with_facts,
)

CODE = "XK00051000"


def operator_aged(years: int) -> str:
    return resident_id(born_years_before(AS_OF, years))


class TestPolicyRows:
    @pytest.mark.parametrize(
        ("changes", "outcome", "rules"),
        [
            ({}, "APPROVE", ["eligible"]),
            ({"operator__id_number": operator_aged(15)}, "REJECT", ["under_16"]),
            ({"operator__id_number": operator_aged(16)}, "REJECT", ["minor_without_own_income"]),
            (
                {"operator__id_number": operator_aged(17), "operator__own_labor_income": True},
                "MANUAL_REVIEW",
                ["minor_with_own_income"],
            ),
            ({"operator__id_number": operator_aged(18)}, "APPROVE", ["eligible"]),
            ({"operator__is_civil_servant": True}, "REJECT", ["civil_servant", "eligible"]),
            ({"premises__region": "440604"}, "REJECT", ["premises_outside_district"]),
            ({"business__composition": "family"}, "REJECT", ["family_members_missing", "eligible"]),
            (
                {"business__composition": "family", "business__family_members": ["黄明"]},
                "APPROVE",
                ["eligible"],
            ),
            (
                {"business__scope": ["理发服务", "私人侦探服务"]},
                "REJECT",
                ["scope_prohibited", "eligible"],
            ),
            ({"business__scope": ["餐饮服务"]}, "MANUAL_REVIEW", ["scope_licensed", "eligible"]),
            ({"business__scope": ["理发"]}, "MANUAL_REVIEW", ["scope_non_standard", "eligible"]),
            (
                {"business__scope": ["网络赌博服务", "食品销售", "修脚"]},
                "REJECT",
                ["scope_prohibited", "scope_licensed", "scope_non_standard", "eligible"],
            ),
        ],
    )
    def test_row(self, decide, changes, outcome, rules):
        """Each row contributes its reason; REJECT > MANUAL_REVIEW > APPROVE."""
        d = decide(CODE, with_facts(BUSINESS, **changes), BUSINESS_MATERIALS)
        assert (d.outcome, [r.rule_id for r in d.reasons]) == (outcome, rules)


class TestName:
    @pytest.mark.parametrize(
        ("name", "rules"),
        [
            ("南海区黄丽理发店", []),
            ("佛山市南海区黄丽理发店", []),
            ("南海区中华理发店", ["name_forbidden_words"]),
            ("南海区国际理发中心", ["name_forbidden_words"]),
            ("南海区黄丽理发店A", ["name_not_hanzi", "name_bad_form"]),
            ("南海区黄丽 理发店", ["name_not_hanzi"]),
            ("南海区黄丽理发店2", ["name_not_hanzi", "name_bad_form"]),
            ("南海区黄丽理发公司", ["name_company_words", "name_bad_form"]),
            ("南海区黄丽合作社店", ["name_company_words"]),
            ("南海区黄丽理发", ["name_bad_form"]),
            ("禅城区黄丽理发店", ["name_no_region"]),
            ("黄丽理发店", ["name_no_region"]),
            ("南海区黄丽服务中心", []),
        ],
    )
    def test_name_rules(self, decide, name, rules):
        """Name rules 7-11 each report independently."""
        d = decide(CODE, with_facts(BUSINESS, business__name=name), BUSINESS_MATERIALS)
        name_rules = [r.rule_id for r in d.reasons if r.rule_id.startswith("name_")]
        assert name_rules == rules
        assert d.outcome == ("REJECT" if rules else "APPROVE")

    def test_no_name_skips_name_rules(self, decide):
        """A business may register without a name; rules 7-11 then do not apply."""
        d = decide(CODE, with_facts(BUSINESS, business__name=None), BUSINESS_MATERIALS)
        assert (d.outcome, [r.rule_id for r in d.reasons]) == ("APPROVE", ["eligible"])


class TestMaterials:
    @pytest.mark.parametrize(
        ("proof", "material"),
        [
            ("owned", "property_certificate"),
            ("leased", "lease_contract"),
            ("free_use", "free_use_certificate"),
        ],
    )
    def test_premises_proof_material(self, decide, proof, material):
        """The premises material depends on the kind of proof."""
        d = decide(
            CODE, with_facts(BUSINESS, premises__proof=proof), ["id_card", "application_form"]
        )
        assert [m.id for m in d.missing_materials] == [material]

    def test_family_proof_is_deferrable(self, decide):
        """A missing family relationship proof is pending (容缺后补), not a rejection."""
        facts = with_facts(
            BUSINESS, business__composition="family", business__family_members=["黄明"]
        )
        d = decide(CODE, facts, BUSINESS_MATERIALS)
        assert d.outcome == "APPROVE"
        assert [m.id for m in d.pending_materials] == ["family_relationship_proof"]
        assert d.missing_materials == ()
