"""Nothing crashes on any input: random and hostile cases get a decision or a clean error."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest

from miaopi_server.errors import CaseInvalid, ItemNotFound
from tests.support import (
    BUSINESS,
    BUSINESS_MATERIALS,
    DEVICE,
    DEVICE_MATERIALS,
    DISABILITY,
    DISABILITY_MATERIALS,
    SENIOR,
    SENIOR_MATERIALS,
    mutate,
)

TODAY = dt.date(2026, 11, 23)
BASES = {
    "GF00012000": (SENIOR, SENIOR_MATERIALS),
    "GF00034001": (DISABILITY, DISABILITY_MATERIALS),
    "XK00051000": (BUSINESS, BUSINESS_MATERIALS),
    "BA00027000": (DEVICE, DEVICE_MATERIALS),
}


@pytest.mark.parametrize("seed", range(4))
def test_random_cases_never_crash(catalog, seed):
    """2,000 mutated cases per seed: each is a decision or a CaseInvalid naming fields."""
    rng = random.Random(seed)
    decided = refused = 0
    for _ in range(2000):
        code = rng.choice([*BASES, "", "nope"])
        facts, materials = BASES.get(code, (SENIOR, SENIOR_MATERIALS))
        mats: Any = list(materials)
        if rng.random() < 0.2:
            mats = rng.choice([["bogus"], [None], "id_card", [1], mats[:1], {"a": 1}])
        try:
            decision = catalog.decide(code, mutate(rng, facts), mats, TODAY)
            assert decision.outcome in ("APPROVE", "REJECT", "MANUAL_REVIEW")
            decided += 1
        except CaseInvalid as exc:
            assert exc.violations and all(v.field and v.description for v in exc.violations)
            refused += 1
        except ItemNotFound:
            refused += 1
    assert decided > 0 and refused > 500  # both paths exercised; nothing else escaped


class TestLimits:
    def test_deep_nesting_refused(self, catalog):
        """Facts nested beyond the limit are one clear error, not a deep recursion."""
        deep: dict = {}
        node = deep
        for _ in range(50):
            node["x"] = {}
            node = node["x"]
        with pytest.raises(CaseInvalid) as info:
            catalog.decide("GF00012000", {"applicant": deep}, [], TODAY)
        assert [v.field for v in info.value.violations] == ["facts"]
        assert "嵌套过深" in info.value.violations[0].description

    def test_too_many_values_refused(self, catalog):
        """A case with thousands of values is refused before validation walks it."""
        facts = {"applicant": {f"k{i}": i for i in range(5000)}}
        with pytest.raises(CaseInvalid) as info:
            catalog.decide("GF00012000", facts, [], TODAY)
        assert "值过多" in info.value.violations[0].description

    def test_error_report_is_bounded(self, catalog):
        """Hundreds of unknown fields give at most 100 violations plus a count of the rest."""
        facts = {"applicant": {f"k{i}": i for i in range(300)}}
        with pytest.raises(CaseInvalid) as info:
            catalog.decide("GF00012000", facts, [], TODAY)
        assert len(info.value.violations) == 101
        assert info.value.violations[-1].description.startswith("另有")

    def test_too_many_materials_refused(self, catalog):
        """More than 100 material ids is one error."""
        with pytest.raises(CaseInvalid) as info:
            catalog.decide("GF00012000", SENIOR, ["id_card"] * 101, TODAY)
        assert [v.field for v in info.value.violations] == ["materials"]
