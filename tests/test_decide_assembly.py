"""decide.assemble against the way it used to be written (kept here as the reference): every
reason sorted by kind then by `deciding_first`, each Reason and the Decision built by their
constructors. Fired sets are real (the engine's, on generated cases of every shipped item) and
arbitrary (random subsets of an item's engine rules, so every mix of outcomes, materials and
output cases is met); the decisions must be equal field by field, in the same order. And the
lean engine fact (submitted materials and empty objects left out) fires exactly the rules the
full one did."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from typing import Any

import pytest

from miaopi_server.decision.catalog import Catalog
from miaopi_server.decision.decide import (
    MANUAL_REVIEW,
    NO_RULE_MATCHED,
    REJECT,
    Decision,
    Reason,
    assemble,
    deciding_first,
    outcome_of,
)
from miaopi_server.decision.validate import Case, asked_as_of
from miaopi_server.decision.workdays import add_working_days
from miaopi_server.lang.probes import MISSING, term_value
from miaopi_server.rules.compile import CompiledItem, engine_fact
from miaopi_server.rules.model import Material
from tests import case_generator

TODAY = dt.date(2026, 11, 20)


def reference(compiled: CompiledItem, case: Case, fired: set[str]) -> Decision:
    """assemble as it was before reasons were ordered as they are collected."""
    item = compiled.item

    def read(paths: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
        return tuple((p, case.values.get(p, MISSING)) for p in paths)

    reasons: list[Reason] = []
    missing: list[Material] = []
    pending: list[Material] = []
    for mp in compiled.material_plan:
        if mp.engine_rule not in fired:
            continue
        m = mp.material
        if m.need == "deferrable":
            pending.append(m)
            continue
        missing.append(m)
        source = m.when.source if m.when else ""
        reasons.append(
            Reason(f"material:{m.id}", REJECT, mp.message, mp.basis, read(mp.reads), source)
        )
    for rp in compiled.rule_plan:
        if rp.engine_rule in fired:
            rule = rp.rule
            reasons.append(
                Reason(
                    rule.id, rule.outcome, rule.message, rp.basis, read(rp.reads), rule.when.source
                )
            )
    if not reasons:
        outcome = MANUAL_REVIEW
        ordered: tuple[Reason, ...] = (
            Reason(NO_RULE_MATCHED, MANUAL_REVIEW, "没有规则适用于此申请，转人工审核", None, ()),
        )
    else:
        outcome = outcome_of(tuple(reasons))
        by_kind = sorted(reasons, key=lambda r: r.rule_id.startswith("material:"))
        ordered = deciding_first(tuple(by_kind), outcome)
    outputs: dict[str, Any] = {}
    if outcome != REJECT:
        for rp in compiled.rule_plan:
            if rp.engine_rule not in fired:
                continue
            for output in rp.outputs:
                for choice in output.choices:
                    if choice.engine_rule is None or choice.engine_rule in fired:
                        if output.name in outputs:
                            break
                        value = choice.value
                        if choice.term is not None:
                            value = term_value(choice.term, lambda p: case.values.get(p, MISSING))
                        if value is not MISSING:
                            outputs[output.name] = value
                        break
    due, estimated = None, False
    if outcome == MANUAL_REVIEW:
        d = add_working_days(case.as_of, max(item.promised_days, 1))
        due, estimated = d.date, d.estimated
    return Decision(
        item_code=item.code,
        version=item.version,
        digest=item.digest,
        outcome=outcome,
        reasons=ordered,
        missing_materials=tuple(missing),
        pending_materials=tuple(pending),
        outputs=outputs,
        as_of=case.as_of,
        derived=case.derived,
        review_due=due,
        review_due_estimated=estimated,
        fired=tuple(sorted(fired)),
        remedies=compiled.remedies if outcome == REJECT else None,
    )


def same(got: Decision, want: Decision) -> None:
    assert got == want
    assert got.fired == want.fired  # not compared by ==
    assert list(vars(got)) == [f.name for f in dataclasses.fields(Decision)]
    assert vars(got) == vars(want)
    for r, w in zip(got.reasons, want.reasons, strict=True):
        assert type(r) is Reason and vars(r) == vars(w)
    assert dataclasses.replace(got, outcome=MANUAL_REVIEW).outcome == MANUAL_REVIEW
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.outcome = REJECT  # type: ignore[misc]


@pytest.mark.parametrize("code", case_generator.ITEMS)
def test_assembly_agrees_with_the_reference(catalog: Catalog, code: str) -> None:
    outcomes = set()
    rule_sets = case_generator.with_rule_sets(catalog, code, 300, 29, TODAY, empty=True)
    for _, compiled, case, chosen in rule_sets:
        want = reference(compiled, case, chosen)
        same(assemble(compiled, case, chosen), want)
        outcomes.add(want.outcome)
    assert outcomes == {"APPROVE", "REJECT", "MANUAL_REVIEW"}


def full_fact(compiled: CompiledItem, values: dict[str, Any], materials: frozenset[str]) -> Any:
    """The engine fact as it was before it left out submitted materials and empty objects:
    every material some rule tests, true or false, and `_p` always."""
    fact: dict[str, Any] = {"_always": True}
    for path in compiled.paths:
        if path in values:
            node = fact
            *parents, leaf = path.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = values[path]
    probes = {}
    for key, probe in compiled.probes:
        v = probe.compute(lambda p: values.get(p, MISSING))
        if v is not None:
            probes[key] = v
    fact["_p"] = probes
    fact["_m"] = {m: m in materials for m in compiled.material_ids}
    return fact


@pytest.mark.parametrize("code", case_generator.ITEMS)
def test_the_lean_engine_fact_fires_the_same_rules(catalog: Catalog, code: str) -> None:
    fired_any = set()
    rng = random.Random(code)
    for facts, materials in case_generator.generate(code, 300, seed=31):
        asked = asked_as_of(facts, TODAY)
        loaded = catalog.select_as_of(code, asked)
        case = loaded.validator(facts, materials, asked)
        compiled = loaded.compiled
        for submitted in (case.materials, frozenset(rng.sample(compiled.material_ids, 1))):
            lean = engine_fact(compiled, case.values, submitted)
            assert all(v is False for v in lean.get("_m", {}).values())
            full = full_fact(compiled, case.values, submitted)
            fired = catalog.engine.evaluate(loaded.handle, lean)
            assert fired == catalog.engine.evaluate(loaded.handle, full), (facts, submitted)
            fired_any.update(fired)
    assert any(name.startswith("m:") for name in fired_any)
