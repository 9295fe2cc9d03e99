"""decision_canonical, the record's bytes of a decision built from cached parts, against the
reference it replaces, canonical(decision_json(...)): byte for byte, or the same exception.
Decisions are real (generated cases of every shipped item, the engine's rules and random
subsets of them, shared data looked up in the sample registry) and arbitrary (hypothesis:
any values in outputs, derived facts and facts read, floats integral, tiny, with exponents,
NaN and infinities, integers beyond 64 bits, subclasses, dates; any text, shared and fresh
model objects), each made twice so that the second one comes from the caches."""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import random
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miaopi_server.audit import decision_json as dj
from miaopi_server.audit.canonical import canonical
from miaopi_server.audit.decision_json import decision_canonical, decision_json
from miaopi_server.decision.catalog import Catalog
from miaopi_server.decision.decide import Decision, Reason, assemble
from miaopi_server.decision.sourced import ELicenseUse, FactOrigin, Gathered, Lookup
from miaopi_server.lang.probes import MISSING
from miaopi_server.ops.lookups import gather
from miaopi_server.rules.model import LegalBasis, Material
from miaopi_server.rules.remedies import Remedies
from miaopi_server.sources.embedded import EmbeddedRegistry
from tests import case_generator
from tests.support import REGISTRY, registry_people

TODAY = dt.date(2026, 11, 20)
TIMES = [
    dt.datetime(2026, 11, 20, 1, 2, 3, tzinfo=dt.UTC),
    dt.datetime(2026, 11, 20, 1, 2, 3, 120000, tzinfo=dt.UTC),
    dt.datetime(2026, 11, 20, 9, 2, 3, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    dt.datetime(2026, 11, 20, 9, 2, 3, 5),  # naive: taken as UTC
]
IDS = [("d-1", "窗口-7"), ("d-2", ""), ("", "r")]


def reference(d: Decision, decision_id: str, request_id: str, when: dt.datetime) -> Any:
    try:
        return canonical(decision_json(d, decision_id, request_id, when))
    except Exception as exc:
        return (type(exc), str(exc))


def quick(d: Decision, decision_id: str, request_id: str, when: dt.datetime) -> Any:
    try:
        return decision_canonical(d, decision_id, request_id, when)
    except Exception as exc:
        return (type(exc), str(exc))


def same(d: Decision, decision_id: str, request_id: str, when: dt.datetime) -> None:
    want = reference(d, decision_id, request_id, when)
    assert quick(d, decision_id, request_id, when) == want
    assert quick(d, decision_id, request_id, when) == want  # again: from the caches


@pytest.mark.parametrize("code", case_generator.ITEMS)
def test_generated_cases_of_every_item(catalog: Catalog, code: str) -> None:
    """The engine's rules and random subsets of them (every outcome, missing and pending
    materials, remedies, outputs), with and without ids, at every clock precision."""
    outcomes, materials_seen = set(), 0
    for n, compiled, case, chosen in case_generator.with_rule_sets(catalog, code, 200, 41, TODAY):
        d = assemble(compiled, case, chosen)
        outcomes.add(d.outcome)
        materials_seen += len(d.missing_materials) + len(d.pending_materials)
        decision_id, request_id = IDS[n % len(IDS)]
        same(d, decision_id, request_id, TIMES[n % len(TIMES)])
    assert outcomes == {"APPROVE", "REJECT", "MANUAL_REVIEW"}
    assert materials_seen


@pytest.mark.parametrize("code", [case_generator.SENIOR, case_generator.DISABILITY])
def test_decisions_on_shared_data(catalog: Catalog, code: str) -> None:
    """Provenance, e-licence uses and every lookup (found, no record), as recorded."""
    people = [p["key"] for p in registry_people()]
    rng = random.Random(code)
    sourced = 0
    with contextlib.closing(EmbeddedRegistry(REGISTRY)) as reg:
        for n, (facts, materials) in enumerate(case_generator.generate(code, 60, seed=43)):
            if n % 2 and isinstance(facts.get("applicant"), dict):
                facts["applicant"]["id_number"] = rng.choice(people)
            item = catalog.select(code, facts, TODAY).item
            gathered = gather(item, facts, f"授权-{n}", reg)
            d = catalog.decide(code, facts, materials, TODAY, gathered)
            sourced += d.sourced is not None and bool(d.provenance)
            same(d, "d-1", "r-1", TIMES[n % len(TIMES)])
    assert sourced


# -- arbitrary decisions -------------------------------------------------------------------


class Text(str):
    pass


class Number(float):
    pass


class Whole(int):
    pass


class Mapping(dict):  # type: ignore[type-arg]
    pass


class Level(enum.IntEnum):
    HIGH = 3


class Kind(enum.StrEnum):
    A = "a"


_floats = st.floats() | st.sampled_from(
    [30.0, -0.0, 1e16, 1e22, 1.5e-7, 1e-5, 0.0001, 5e-324, 2.5, 0.1, 1e300, float("nan")]
)
_ints = st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from(
    [2**53 + 1, 2**63, 2**64, 10**400]  # the last has no float
)
_odd = st.sampled_from(
    [Text("t"), Number(2.0), Number(0.5), Whole(7), Level.HIGH, Kind.A, object(), b"x", "\ud800"]
)
_scalars = (
    st.none()
    | st.booleans()
    | _ints
    | _floats
    | st.text(max_size=8)
    | st.dates()
    | st.datetimes()
    | _odd
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
        | st.dictionaries(st.text(max_size=4), inner, max_size=2).map(Mapping)
    ),
    max_leaves=8,
)
_plain_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(min_value=-9e18, max_value=9e18)  # integral ones fit in 64 bits
    | st.sampled_from([float("nan"), float("inf"), 1e-7, 1e16])
    | st.text(max_size=8)
    | st.dates(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
_text = st.text(max_size=6) | st.sampled_from(["", "eligible", Text("sub")])
_BASES = [LegalBasis("b1", "某法", "第一条"), LegalBasis("b2", "另一法"), LegalBasis("", "")]
_MATERIALS = [Material("id_card", "身份证", "required", True), Material("m2", "", "deferrable")]
_REMEDIES = [Remedies("复议机关", 60, "法院", 6, "告知"), Remedies("", 0, "", 0, "", ())]
_bases = st.none() | st.sampled_from(_BASES) | st.builds(LegalBasis, _text, _text, _text)
_outcomes = st.sampled_from(["APPROVE", "REJECT", "MANUAL_REVIEW"])
_reasons = st.builds(
    Reason,
    rule_id=_text,
    outcome=_outcomes,
    message=_text,
    basis=_bases,
    facts_read=st.lists(st.tuples(_text, _values | st.just(MISSING)), max_size=3).map(tuple),
    condition=_text,
)
_materials = st.lists(
    st.sampled_from(_MATERIALS) | st.builds(Material, _text, _text, st.just("required")),
    max_size=2,
).map(tuple)
_gathered = st.builds(
    Gathered,
    consent=_text,
    lookups=st.lists(
        st.builds(
            Lookup,
            source=_text,
            key_path=_text,
            status=st.sampled_from(["found", "no_record"]),
            record_id=_text,
            values=st.dictionaries(st.text(max_size=4), _values, max_size=3),
        ),
        max_size=2,
    ).map(tuple),
)
_decisions = st.builds(
    Decision,
    item_code=_text,
    version=_text,
    digest=_text,
    outcome=_outcomes,
    reasons=st.lists(_reasons, max_size=3).map(tuple),
    missing_materials=_materials,
    pending_materials=_materials,
    outputs=st.dictionaries(st.text(max_size=4), _values, max_size=3),
    as_of=st.dates(),
    derived=st.dictionaries(st.text(max_size=4), _values, max_size=3),
    review_due=st.none() | st.dates(),
    review_due_estimated=st.booleans(),
    provenance=st.lists(st.builds(FactOrigin, _text, _text, _text), max_size=2).map(tuple),
    e_licenses=st.lists(st.builds(ELicenseUse, _text, _text, _text), max_size=1).map(tuple),
    sourced=st.none() | _gathered,
    remedies=st.none() | st.sampled_from(_REMEDIES),
)
_times = st.datetimes(timezones=st.none() | st.just(dt.UTC) | st.timezones())


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_decisions, _text, _text, _times)
def test_arbitrary_decisions(d: Decision, decision_id: str, request_id: str, when: Any) -> None:
    same(d, decision_id, request_id, when)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(max_size=4), _plain_values, max_size=4), _times)
def test_plain_values_take_the_quick_path(values: dict[str, Any], when: Any) -> None:
    """Values of the exact JSON types (finite, integers within 64 bits) and dates never need
    the reference."""
    d = Decision("C", "1", "sha256:x", "APPROVE", (), (), (), values, TODAY, values)
    try:
        canonical(decision_json(d, "d", "r", when))
    except ValueError:  # NaN or an infinity: no JSON form
        return
    want = canonical(decision_json(d, "d", "r", when))
    assert orjson.dumps(dj._quick(d, "d", "r", when), option=dj._OPTIONS) == want


def test_the_caches_are_bounded() -> None:
    for i in range(5000):
        r = Reason(f"r{i}", "APPROVE", "m", LegalBasis(f"b{i}", "法"), ())
        d = Decision("C", "1", f"x{i}", "APPROVE", (r,), (), (), {}, TODAY, {})
        same(d, "d", "r", TIMES[0])
    assert len(dj._reasons) <= 4096
    assert dj._ruleset_part.cache_info().currsize <= 4096
    assert len(dj._basis_part._made) <= 4096
