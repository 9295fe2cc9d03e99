"""Decide one case: validate, derive, evaluate in the rules engine, assemble the decision.

Pure apart from the engine call: the decision depends only on (case, compiled rule file,
`today` for cases that omit application.date). Identity and time stamps (decision_id,
decided_at) are added by the caller.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from miaopi_server.decision.engine import Engine, RulesetHandle
from miaopi_server.decision.sourced import (
    DEFAULT,
    DERIVED,
    WINDOW,
    DataNote,
    ELicenseUse,
    FactOrigin,
    Gathered,
    e_license_uses,
    licence_library_note,
    merge_facts,
)
from miaopi_server.decision.validate import AsOf, Case, validate_case
from miaopi_server.decision.workdays import add_working_days
from miaopi_server.lang.probes import MISSING, term_value
from miaopi_server.rules.compile import CompiledItem, OutputPlan, engine_fact
from miaopi_server.rules.model import LegalBasis, Material
from miaopi_server.rules.remedies import Remedies

APPROVE, REJECT, MANUAL_REVIEW = "APPROVE", "REJECT", "MANUAL_REVIEW"
NO_RULE_MATCHED = "no_rule_matched"
_T = TypeVar("_T")
_new = object.__new__
_setattr = object.__setattr__


@dataclass(frozen=True)
class Reason:
    rule_id: str
    outcome: str
    message: str
    basis: LegalBasis | None
    facts_read: tuple[tuple[str, Any], ...]  # (path, value or MISSING)
    condition: str = ""


@dataclass(frozen=True)
class Decision:
    item_code: str
    version: str
    digest: str
    outcome: str
    reasons: tuple[Reason, ...]
    missing_materials: tuple[Material, ...]
    pending_materials: tuple[Material, ...]
    outputs: dict[str, Any]
    as_of: dt.date
    derived: dict[str, Any]
    review_due: dt.date | None = None
    review_due_estimated: bool = False
    fired: tuple[str, ...] = field(default=(), compare=False)
    # 四免: where each fact came from, materials satisfied by e-license, the lookups used.
    provenance: tuple[FactOrigin, ...] = ()
    e_licenses: tuple[ELicenseUse, ...] = ()
    sourced: Gathered | None = None
    # On a REJECT: how to challenge it (行政许可法 Art. 38); None otherwise.
    remedies: Remedies | None = None


# Severity of an outcome: the first group of reasons in a decision decides it.
SEVERITY = {REJECT: 0, MANUAL_REVIEW: 1, APPROVE: 2}
# The one reason of a decision no rule matched (immutable: shared by every such decision).
NO_RULE_REASON = Reason(
    NO_RULE_MATCHED, MANUAL_REVIEW, "没有规则适用于此申请，转人工审核", None, ()
)


def deciding_first(reasons: tuple[Reason, ...], outcome: str) -> tuple[Reason, ...]:
    """Reasons with the decision's outcome first, the rest by severity (REJECT, MANUAL_REVIEW,
    APPROVE); stable, so each group keeps rule-file order. A refusal for a missing material
    then leads with the material, not with the `eligible` rule that also matched."""
    return tuple(sorted(reasons, key=lambda r: (r.outcome != outcome, SEVERITY[r.outcome])))


def outcome_of(reasons: tuple[Reason, ...]) -> str:
    """REJECT > MANUAL_REVIEW > APPROVE; no reason at all is MANUAL_REVIEW."""
    outcomes = {r.outcome for r in reasons}
    for o in (REJECT, MANUAL_REVIEW, APPROVE):
        if o in outcomes:
            return o
    return MANUAL_REVIEW


def decide(
    compiled: CompiledItem,
    handle: RulesetHandle,
    engine: Engine,
    facts: Any,
    materials: Any,
    asked: AsOf,
    gathered: Gathered | None = None,
    validate: Callable[[Any, Any, AsOf], Case] | None = None,
) -> Decision:
    """Decide a case; raises CaseInvalid for malformed input. `asked`: its as-of date, read
    once (validate.asked_as_of). `gathered` is what shared data said about it (looked up
    before, never from here); None: the case's own facts only. `validate`: the item's
    compiled validator (decision/validator.py); None: the reference, validate_case."""
    item = compiled.item
    if gathered is None:  # the case's own facts only: nothing to merge, no e-licence to use
        if validate is None:
            case = validate_case(item, facts, materials, asked.today)
        else:
            case = validate(facts, materials, asked)
        fired = engine.evaluate(handle, compiled.fact_builder(case.values, case.materials))
        return assemble(compiled, case, set(fired))
    merged = merge_facts(item, facts, gathered)
    if validate is None:
        case = validate_case(item, merged.facts, materials, asked.today)
    else:
        case = validate(merged.facts, materials, asked)
    uses = e_license_uses(item, gathered, case.materials, case.as_of)
    if uses:
        case = dataclasses.replace(case, materials=case.materials | {u.material_id for u in uses})
    fired = engine.evaluate(handle, engine_fact(compiled, case.values, case.materials))
    decision = assemble(compiled, case, set(fired))
    notes = [*merged.notes, *filter(None, [licence_library_note(item, gathered, case.materials)])]
    days = item.promised_days
    return _with_sources(decision, case, facts, merged.origins, notes, uses, gathered, days)


def _with_sources(
    decision: Decision,
    case: Case,
    window_facts: Any,
    origins: dict[str, FactOrigin],
    notes: list[DataNote],
    uses: tuple[ELicenseUse, ...],
    gathered: Gathered,
    promised_days: int,
) -> Decision:
    """Add provenance, e-license uses and data findings. A finding that asks for review makes
    the outcome MANUAL_REVIEW even over a REJECT: a decision resting on disputed or unverified
    data is a human's to make."""
    given = _paths(window_facts)
    provenance = []
    for path in sorted(case.values):
        if path in case.derived:
            provenance.append(FactOrigin(path, DERIVED))
        elif path in origins:
            provenance.append(origins[path])
        else:
            provenance.append(FactOrigin(path, WINDOW if path in given else DEFAULT))
    # Findings that do not ask for review (a value corrected by source_wins) live in the
    # provenance notes; the reasons carry those a human must look at.
    extra = tuple(
        Reason(n.rule_id, MANUAL_REVIEW, n.message, None, ((n.path, n.window_value),))
        for n in notes
        if n.review
    )
    outcome, due, estimated = decision.outcome, decision.review_due, decision.review_due_estimated
    if any(n.review for n in notes) and outcome != MANUAL_REVIEW:
        outcome = MANUAL_REVIEW
        d = add_working_days(case.as_of, max(promised_days, 1))
        due, estimated = d.date, d.estimated
    return dataclasses.replace(
        decision,
        outcome=outcome,
        reasons=deciding_first(extra + decision.reasons, outcome),
        review_due=due,
        review_due_estimated=estimated,
        remedies=decision.remedies if outcome == REJECT else None,
        provenance=tuple(provenance),
        e_licenses=uses,
        sourced=gathered,
    )


def _paths(facts: Any, prefix: str = "") -> set[str]:
    if not isinstance(facts, dict):
        return set()
    out: set[str] = set()
    for k, v in facts.items():
        if isinstance(v, dict):
            out |= _paths(v, f"{prefix}{k}.")
        elif v is not None:
            out.add(f"{prefix}{k}")
    return out


def _build(cls: type[_T], fields: dict[str, Any]) -> _T:
    """A frozen dataclass instance from all its fields, in one step: its own __init__ sets
    each field through object.__setattr__, a fifth of assembling a decision (the object is
    the same: tests/test_decide_assembly.py compares it with the constructor's)."""
    obj = _new(cls)
    _setattr(obj, "__dict__", fields)
    return obj


# Per material with an engine rule: (engine rule, material, deferrable, its reason when it
# reads no fact (then the same for every case), the reason's fields, paths read, MISSING per
# path). Per policy rule: (engine rule, severity, the reason's fields, paths read, MISSING per
# path, outputs). The reason's fields are in Reason's order; facts_read is filled per case.
_MaterialStep = tuple[
    str, Material, bool, "Reason | None", dict[str, Any], tuple[str, ...], tuple[Any, ...]
]
_RuleStep = tuple[
    str, int, dict[str, Any], tuple[str, ...], tuple[Any, ...], tuple[OutputPlan, ...]
]


def _assembly_plan(
    compiled: CompiledItem,
) -> tuple[tuple[_MaterialStep, ...], tuple[_RuleStep, ...]]:
    """Each material's and rule's part of assembling, worked out once per item as plain tuples
    (unpacked in one step per case, where named fields were read one lookup at a time)."""
    plan = compiled.worked_out.get("assembly")
    if plan is not None:
        return plan  # type: ignore[no-any-return]
    materials: list[_MaterialStep] = []
    for mp in compiled.material_plan:
        fields = {
            "rule_id": mp.reason_id,
            "outcome": REJECT,
            "message": mp.message,
            "basis": mp.basis,
            "facts_read": (),
            "condition": mp.condition,
        }
        fixed = None if mp.reads else _build(Reason, dict(fields))
        deferrable = mp.material.need == "deferrable"
        materials.append(
            (mp.engine_rule, mp.material, deferrable, fixed, fields, mp.reads, mp.absent)
        )
    rules: list[_RuleStep] = []
    for rp in compiled.rule_plan:
        rule = rp.rule
        fields = {
            "rule_id": rule.id,
            "outcome": rule.outcome,
            "message": rule.message,
            "basis": rp.basis,
            "facts_read": (),
            "condition": rule.when.source,
        }
        rules.append(
            (rp.engine_rule, SEVERITY[rule.outcome], fields, rp.reads, rp.absent, rp.outputs)
        )
    plan = (tuple(materials), tuple(rules))
    compiled.worked_out["assembly"] = plan
    return plan


def assemble(compiled: CompiledItem, case: Case, fired: set[str]) -> Decision:
    """Build the decision from the set of engine rules that fired.

    Reasons come in the order `deciding_first` gives (the decision's outcome is the most
    severe one present, so that is severity order): refusing policy rules in rule-file order,
    then the missing materials (every one a refusal), then MANUAL_REVIEW rules, then APPROVE
    ones; worked out as they are collected instead of sorted twice."""
    item = compiled.item
    get = case.values.get
    material_steps, rule_steps = _assembly_plan(compiled)
    by_severity: tuple[list[Reason], list[Reason], list[Reason]] = ([], [], [])
    materials: list[Reason] = []
    missing: list[Material] = []
    pending: list[Material] = []
    reason: Reason
    for engine_rule, m, deferrable, fixed, fields, reads, absent in material_steps:
        if engine_rule not in fired:
            continue
        if deferrable:
            pending.append(m)
            continue
        missing.append(m)
        if fixed is None:
            fields = fields.copy()
            fields["facts_read"] = tuple(zip(reads, map(get, reads, absent), strict=True))
            reason = _new(Reason)
            _setattr(reason, "__dict__", fields)
        else:
            reason = fixed
        materials.append(reason)
    matched: list[tuple[OutputPlan, ...]] = []
    for engine_rule, severity, fields, reads, absent, plans in rule_steps:
        if engine_rule not in fired:
            continue
        fields = fields.copy()
        fields["facts_read"] = tuple(zip(reads, map(get, reads, absent), strict=True))
        reason = _new(Reason)
        _setattr(reason, "__dict__", fields)
        by_severity[severity].append(reason)
        if plans:
            matched.append(plans)
    rejects, reviews, approvals = by_severity
    ordered: tuple[Reason, ...]
    if rejects or materials:
        outcome = REJECT
        ordered = (*rejects, *materials, *reviews, *approvals)
    elif reviews:
        outcome = MANUAL_REVIEW
        ordered = (*reviews, *approvals)
    elif approvals:
        outcome = APPROVE
        ordered = tuple(approvals)
    else:
        outcome = MANUAL_REVIEW
        ordered = (NO_RULE_REASON,)
    outputs: dict[str, Any] = {}
    if outcome != REJECT:
        for rule_outputs in matched:
            for output in rule_outputs:
                for choice in output.choices:
                    if choice.engine_rule is None or choice.engine_rule in fired:
                        if output.name in outputs:
                            break
                        value = choice.value
                        if choice.term is not None:  # computed from the case; may be missing
                            value = term_value(choice.term, lambda p: get(p, MISSING))
                        if value is not MISSING:
                            outputs[output.name] = value
                        break
    due, estimated = None, False
    if outcome == MANUAL_REVIEW:
        d = add_working_days(case.as_of, max(item.promised_days, 1))
        due, estimated = d.date, d.estimated
    return _build(
        Decision,
        {
            "item_code": item.code,
            "version": item.version,
            "digest": item.digest,
            "outcome": outcome,
            "reasons": ordered,
            "missing_materials": tuple(missing),
            "pending_materials": tuple(pending),
            "outputs": outputs,
            "as_of": case.as_of,
            "derived": case.derived,
            "review_due": due,
            "review_due_estimated": estimated,
            "fired": tuple(sorted(fired)),
            "provenance": (),
            "e_licenses": (),
            "sourced": None,
            "remedies": compiled.remedies if outcome == REJECT else None,
        },
    )
