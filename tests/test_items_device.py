"""BA00027000 第二类医疗器械经营备案: every policy row, area boundaries, checksum review."""

from __future__ import annotations

import pytest

from miaopi_server.errors import CaseInvalid
from tests.support import DEVICE, DEVICE_MATERIALS, credit_code, with_facts

CODE = "BA00027000"
BAD_CHECK = "91350100M000100Y44"  # well-formed, wrong check character


class TestPolicyRows:
    @pytest.mark.parametrize(
        ("changes", "outcome", "rules"),
        [
            ({}, "APPROVE", ["eligible"]),
            (
                {"enterprise__sells_own_registered_products": True},
                "REJECT",
                ["registrant_own_products"],
            ),
            ({"enterprise__business_scope": ["保健食品销售"]}, "REJECT", ["scope_lacks_class2"]),
            ({"enterprise__uscc": credit_code("93440605BMC03GH60")}, "REJECT", ["not_enterprise"]),
            ({"enterprise__uscc": "92440605MA00000A0G"}, "APPROVE", ["eligible"]),
            ({"premises__region": "440305"}, "REJECT", ["premises_outside_city"]),
            ({"premises__area_sqm": 39.5}, "REJECT", ["premises_too_small"]),
            ({"premises__area_sqm": 40}, "APPROVE", ["eligible"]),
            ({"warehouse__area_sqm": 19.9}, "REJECT", ["warehouse_too_small"]),
            ({"warehouse__area_sqm": 20}, "APPROVE", ["eligible"]),
            ({"warehouse__area_sqm": None}, "REJECT", ["warehouse_too_small"]),
            ({"quality_manager__qualified": False}, "REJECT", ["manager_unqualified"]),
            (
                {"enterprise__uscc": BAD_CHECK},
                "MANUAL_REVIEW",
                ["credit_code_checksum", "eligible"],
            ),
            (
                {"products__categories": ["ivd_reagents"]},
                "MANUAL_REVIEW",
                ["ivd_reagents", "eligible"],
            ),
        ],
    )
    def test_row(self, decide, changes, outcome, rules):
        """Each row contributes its reason; REJECT > MANUAL_REVIEW > APPROVE."""
        d = decide(CODE, with_facts(DEVICE, **changes), DEVICE_MATERIALS)
        assert (d.outcome, [r.rule_id for r in d.reasons]) == (outcome, rules)

    def test_outsourced_storage_needs_no_warehouse(self, decide):
        """Outsourced storage needs no own warehouse, but the service contract is required."""
        facts = with_facts(DEVICE, warehouse__outsourced=True, warehouse__area_sqm=None)
        d = decide(CODE, facts, DEVICE_MATERIALS)
        assert d.outcome == "REJECT"
        assert [m.id for m in d.missing_materials] == ["warehouse_service_contract"]
        d = decide(CODE, facts, [*DEVICE_MATERIALS, "warehouse_service_contract"])
        assert d.outcome == "APPROVE"

    def test_on_the_spot_review_due_next_working_day(self, decide):
        """即办件: a manual review is due by the end of the next working day."""
        d = decide(CODE, with_facts(DEVICE, enterprise__uscc=BAD_CHECK), DEVICE_MATERIALS)
        assert d.review_due is not None and d.review_due.isoformat() == "2026-11-23"

    def test_checksum_is_derived(self, decide):
        """The checksum flag and the code's first two characters are derived facts."""
        d = decide(CODE, with_facts(DEVICE, enterprise__uscc=BAD_CHECK), DEVICE_MATERIALS)
        assert d.derived == {"enterprise.uscc_checksum_ok": False, "enterprise.uscc_kind": "91"}


class TestValidation:
    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"enterprise__uscc": "91350100M000100Y4"}, "facts.enterprise.uscc"),
            ({"enterprise__uscc": "91350100I000100Y43"}, "facts.enterprise.uscc"),
            ({"premises__area_sqm": 0}, "facts.premises.area_sqm"),
            ({"premises__area_sqm": -5}, "facts.premises.area_sqm"),
            ({"enterprise__business_scope": []}, "facts.enterprise.business_scope"),
            ({"warehouse__outsourced": None}, "facts.warehouse.outsourced"),
            ({"products__categories": "ivd_reagents"}, "facts.products.categories"),
        ],
    )
    def test_bad_field(self, decide, changes, field):
        """Malformed codes, non-positive areas, empty required lists are input errors."""
        with pytest.raises(CaseInvalid) as info:
            decide(CODE, with_facts(DEVICE, **changes), DEVICE_MATERIALS)
        assert [v.field for v in info.value.violations] == [field]
