"""DryRunDecide: a case decided exactly as Decide would, and nothing else.

No decision record, no receipt, no case opened (so no KPI counts it), no lookup in shared
data: the case is decided on its own facts and the lookups recorded with it (`sourced`, as a
recorded decision or `miaopi audit export` has them). What does go on the record is the dry
run itself: a "dry_run" event naming who ran it, the item, the rule-set version and digest,
the outcome and the case's digest; never the facts. Supervisors and admins only (they may
regress a rule change against a live server; windows decide for real).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format

from miaopi.v1 import approval_pb2 as pb
from miaopi_server.audit.record import case_digest
from miaopi_server.audit.store import AuditStore
from miaopi_server.clock import shanghai_today
from miaopi_server.decision.catalog import Catalog
from miaopi_server.decision.decide import Decision
from miaopi_server.decision.sourced import Gathered
from miaopi_server.edge import convert
from miaopi_server.edge.auth import Principal
from miaopi_server.edge.requests import envelope_violations
from miaopi_server.errors import CaseInvalid, FieldViolation

DRY_RUN = "dry_run"


def _within_case(violations: list[FieldViolation]) -> list[FieldViolation]:
    """Fields of the embedded case named from the request's root: "case.facts.x"."""
    return [FieldViolation(f"case.{v.field}", v.description) for v in violations]


def recorded_lookups(request: pb.DryRunDecideRequest) -> Gathered | None:
    """The lookups sent with the case, or None; CaseInvalid naming `sourced` if malformed."""
    if not request.HasField("sourced"):
        return None
    data = json_format.MessageToDict(request.sourced, preserving_proto_field_name=True)
    try:
        return Gathered.from_json(data)
    except ValueError as exc:
        raise CaseInvalid([FieldViolation("sourced", str(exc))]) from None


def dry_decide(
    request: pb.DryRunDecideRequest, catalog: Catalog, now: dt.datetime
) -> tuple[Decision, dict[str, Any]]:
    """The decision and the case as received; CaseInvalid naming every bad field (of the
    envelope, the case and `sourced`) at once, ItemNotFound for an unknown item."""
    inner = request.case
    violations = envelope_violations(inner)
    facts: dict[str, Any] = {}
    try:
        facts = convert.facts_from_struct(inner.facts)
    except CaseInvalid as exc:
        violations.extend(exc.violations)
    case = {"item_code": inner.item_code, "facts": facts, "materials": list(inner.materials)}
    violations = _within_case(violations)
    try:
        gathered = recorded_lookups(request)
    except CaseInvalid as exc:
        violations.extend(exc.violations)
        gathered = None
    today = shanghai_today(now)
    try:
        decision = catalog.decide(inner.item_code, facts, case["materials"], today, gathered)
    except CaseInvalid as exc:
        raise CaseInvalid([*violations, *_within_case(exc.violations)]) from None
    if violations:
        raise CaseInvalid(violations)
    return decision, case


def event_of(principal: Principal, decision: Decision, case: dict[str, Any]) -> dict[str, Any]:
    """The dry run as the trail records it: who, which rules, what came out; the case only by
    its digest (no personal data in the event)."""
    return {
        "type": DRY_RUN,
        "by": principal.id,
        "role": principal.role,
        "item_code": decision.item_code,
        "ruleset_version": decision.version,
        "ruleset_digest": decision.digest,
        "outcome": decision.outcome,
        "case_digest": case_digest(case["item_code"], case["facts"], case["materials"]),
    }


async def dry_run(
    request: pb.DryRunDecideRequest,
    principal: Principal,
    catalog: Catalog,
    store: AuditStore,
    clock: Callable[[], dt.datetime],
) -> pb.DryRunDecideResponse:
    """Decide, record the dry-run event, answer. Raises CaseInvalid, ItemNotFound,
    AuditUnavailable (no answer without the event on the record)."""
    now = clock()
    decision, case = dry_decide(request, catalog, now)
    details = event_of(principal, decision, case)
    event = await asyncio.get_running_loop().run_in_executor(None, store.record_event, details)
    msg = convert.decision_message(decision, "", "", now)
    msg.dry_run = True
    return pb.DryRunDecideResponse(decision=msg, event_seq=event.seq)
