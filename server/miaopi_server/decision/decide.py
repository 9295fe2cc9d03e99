"""Decide one case: validate, derive, evaluate in the rules engine, assemble the decision.

Pure apart from the engine call: the decision depends only on (case, compiled rule file,
`today` for cases that omit application.date). Identity and time stamps (decision_id,
decided_at) are added by the caller.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

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
from miaopi_server.decision.validate import Case, validate_case
from miaopi_server.decision.workdays import add_working_days
from miaopi_server.lang.probes import MISSING, term_value
from miaopi_server.rules.compile import CompiledItem, engine_fact
from miaopi_server.rules.model import LegalBasis, Material
from miaopi_server.rules.remedies import Remedies

APPROVE, REJECT, MANUAL_REVIEW = "APPROVE", "REJECT", "MANUAL_REVIEW"
NO_RULE_MATCHED = "no_rule_matched"


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
    today: dt.date,
    gathered: Gathered | None = None,
) -> Decision:
    """Decide a case; raises CaseInvalid for malformed input. `gathered` is what shared data
    said about it (looked up before, never from here); None: the case's own facts only."""
    item = compiled.item
    merged = merge_facts(item, facts, gathered)
    case = validate_case(item, merged.facts, materials, today)
    uses = e_license_uses(item, gathered, case.materials, case.as_of)
    if uses:
        case = dataclasses.replace(case, materials=case.materials | {u.material_id for u in uses})
    fired = engine.evaluate(handle, engine_fact(compiled, case.values, case.materials))
    decision = assemble(compiled, case, set(fired))
    if gathered is None:
        return decision
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


def _read(case: Case, paths: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    get = case.values.get
    return tuple((p, get(p, MISSING)) for p in paths)


def assemble(compiled: CompiledItem, case: Case, fired: set[str]) -> Decision:
    """Build the decision from the set of engine rules that fired."""
    item = compiled.item
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
            Reason(f"material:{m.id}", REJECT, mp.message, mp.basis, _read(case, mp.reads), source)
        )
    for rp in compiled.rule_plan:
        if rp.engine_rule in fired:
            rule = rp.rule
            reasons.append(
                Reason(
                    rule.id,
                    rule.outcome,
                    rule.message,
                    rp.basis,
                    _read(case, rp.reads),
                    rule.when.source,
                )
            )
    if not reasons:
        outcome = MANUAL_REVIEW
        ordered: tuple[Reason, ...] = (
            Reason(NO_RULE_MATCHED, MANUAL_REVIEW, "没有规则适用于此申请，转人工审核", None, ()),
        )
    else:
        # Within a severity group: policy rules in rule-file order, then the materials notice.
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
                        if choice.term is not None:  # computed from the case; may be missing
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
