"""ReviewService: the work decisions open, served to reviewers, windows and supervisors.

Who sees what: a reviewer the tasks of its department within its jurisdiction (a region code
prefix), a supervisor every task within its jurisdiction, a window the tasks its own
decisions opened, an admin (and --insecure-no-auth) all. Every action is a transition applied
and recorded by the audit store's writer (audit/sqlite_casework.py) in one transaction.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import structlog

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import review_pb2 as rpb
from miaopi.v1 import review_pb2_grpc as rpb_grpc
from miaopi_server.audit.chainstore import ChainStore
from miaopi_server.audit.record import fixed_time
from miaopi_server.audit.transition import new_transition
from miaopi_server.casework import kpi
from miaopi_server.casework import states as s
from miaopi_server.casework.alerts import Alert
from miaopi_server.casework.deadlines import deadlines
from miaopi_server.casework.model import Action, Task, supplement_due
from miaopi_server.casework.rating import RATE
from miaopi_server.clock import shanghai_today, utc_now
from miaopi_server.edge import convert
from miaopi_server.edge.auth import (
    ALL_DEPARTMENTS,
    Authenticator,
    Principal,
    may_see,
    within_jurisdiction,
)
from miaopi_server.edge.requests import decision_id_violations, identifier
from miaopi_server.edge.service import ApprovalService, add_service
from miaopi_server.edge.status import abort
from miaopi_server.errors import CaseInvalid, DecisionNotFound, FieldViolation, MiaopiError

# Each action RPC has a response type of its own (buf STANDARD), all with the same fields.
_Moved = TypeVar(
    "_Moved",
    rpb.ClaimTaskResponse,
    rpb.ReleaseTaskResponse,
    rpb.DecideTaskResponse,
    rpb.RequestSupplementResponse,
    rpb.SupplyMaterialsResponse,
    rpb.WithdrawCaseResponse,
    rpb.RateCaseResponse,
    rpb.EscalateTaskResponse,
    rpb.SuspendTaskResponse,
    rpb.ResumeTaskResponse,
)

log = structlog.get_logger("miaopi.review")
REVIEW_SERVICE_NAME = rpb.DESCRIPTOR.services_by_name["ReviewService"].full_name
DEFAULT_PAGE, MAX_PAGE = 50, 500
ALERT_PAGE = 100
OPEN_STATES = [s.OPEN, s.CLAIMED, s.AWAITING_SUPPLEMENT, s.SUSPENDED, s.SUPPLEMENT_PENDING]
MAX_PAGE_TOKEN = 256
MAX_ITEM_CODE = 64  # as ListDecisions' filter
SUPERVISING = frozenset({"supervisor", "admin", "anonymous"})


def encode_task_token(last: Task) -> str:
    """An opaque ListTasks page token: where the page ended in the order (opened_at,
    decision_id)."""
    key = json.dumps([fixed_time(last.opened_at), last.decision_id], ensure_ascii=False)
    return base64.urlsafe_b64encode(key.encode()).decode()


def decode_task_token(token: str) -> tuple[str, str] | None:
    if len(token) > MAX_PAGE_TOKEN:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode("ascii")).decode())
    except (UnicodeError, binascii.Error, ValueError):
        return None
    if not isinstance(key, list) or len(key) != 2 or not all(isinstance(k, str) and k for k in key):
        return None
    if decision_id_violations(key[1]):  # e.g. "\ud800" or a NUL, which no store can compare
        return None
    try:
        dt.datetime.fromisoformat(key[0])
    except ValueError:
        return None
    return key[0], key[1]


def _outcome(name: str) -> int:
    return int(pb.Outcome.Value(f"OUTCOME_{name}")) if name else pb.OUTCOME_UNSPECIFIED


def task_message(task: Task, last_seq: int, now: dt.datetime, idle: dt.timedelta) -> rpb.Task:
    msg = rpb.Task(
        decision_id=task.decision_id,
        kind=task.kind,
        state=task.state,
        item_code=task.item_code,
        department=task.department,
        jurisdiction=task.jurisdiction,
        window_id=task.window_id,
        opened_at=convert.timestamp(task.opened_at),
        assignee=task.assignee,
        pending_materials=list(task.pending_materials),
        rules_outcome=_outcome(task.rules_outcome),
        rules_verdict=_outcome(task.rules_verdict),
        outcome=_outcome(task.outcome),
        overridden=task.overridden,
        last_seq=last_seq,
        escalations=task.escalations,
        pauses=[
            rpb.TaskPause(
                kind=p.kind,
                reason=p.reason,
                started_on=p.started_on.isoformat(),
                ended_on=p.ended_on.isoformat() if p.ended_on else "",
            )
            for p in task.pauses
        ],
    )
    if task.last_escalated_at is not None:
        msg.last_escalated_at.CopyFrom(convert.timestamp(task.last_escalated_at))
    if task.state == s.CLAIMED and task.active_at is not None:
        msg.claim_expires_at.CopyFrom(convert.timestamp(task.active_at + idle))
    if task.kind == s.REVIEW:
        d = deadlines(
            task.opened_on, task.promised_days, task.statutory_days, task.pauses,
            shanghai_today(now),
        )  # fmt: skip
        msg.promised_due_date = d.promised_due.isoformat()
        msg.statutory_due_date = d.statutory_due.isoformat()
        msg.due_dates_estimated = d.estimated
        msg.used_working_days = d.used_days
        msg.paused_working_days = d.paused_days
        if task.state not in s.FINAL:
            msg.warning = d.warning
    elif task.kind == s.SUPPLEMENT:
        msg.supplement_due_date = supplement_due(task).isoformat()
    return msg


class ReviewService(rpb_grpc.ReviewServiceServicer):  # type: ignore[misc]  # no stubs
    def __init__(
        self,
        approval: ApprovalService,
        store: ChainStore,
        node_id: str,
        claim_idle_seconds: float,
        clock: Callable[[], dt.datetime] = utc_now,
        response_working_hours: float = kpi.DEFAULT_RESPONSE_HOURS,
        authenticator: Authenticator | None = None,
    ):
        self._auth = authenticator  # finds the department heads escalations go to
        self._response_hours = response_working_hours
        self._alert_poll = 0.5  # seconds between looks at the alerts table while following
        self._approval = approval  # its authentication, authorisation and rate limits
        self._store = store
        self._node_id = node_id
        self._idle = dt.timedelta(seconds=claim_idle_seconds)
        self._clock = clock

    async def _guard(self, context: grpc.aio.ServicerContext, rpc: str) -> Principal:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(rpc=rpc)
        return await self._approval.guard(context, rpc)

    async def _visible(
        self, context: grpc.aio.ServicerContext, principal: Principal, rpc: str, decision_id: str
    ) -> tuple[Task, int]:
        if bad := decision_id_violations(decision_id):
            await abort(context, CaseInvalid(bad))
        # Store reads run in a thread: a stalled database must not freeze the event loop.
        found = await asyncio.to_thread(self._store.task, decision_id)
        if found is None:  # a case the rules closed at once has its decision record only
            record = await asyncio.to_thread(self._store.get, decision_id)
            if record is None:
                await abort(context, DecisionNotFound(decision_id[:64]))
            found = (self._approval.opener.closed_at_once(record), record.seq)
        if not may_see(principal, found[0]):
            await self._approval.deny(context, rpc, "该办件不在授权范围内")
        return found

    async def ListTasks(
        self, request: rpb.ListTasksRequest, context: grpc.aio.ServicerContext
    ) -> rpb.ListTasksResponse:
        principal = await self._guard(context, "ListTasks")
        violations = [
            FieldViolation("states", f"未知状态 {st[:32]!r}")
            for st in request.states
            if st not in s.STATE_NAMES
        ]
        violations += identifier("item_code", request.item_code, MAX_ITEM_CODE)
        if not 0 <= request.page_size <= MAX_PAGE:
            violations.append(FieldViolation("page_size", f"须在 0 至 {MAX_PAGE} 之间"))
        after = ("", "")
        if request.page_token:
            parsed = decode_task_token(request.page_token)
            if parsed is None:
                violations.append(FieldViolation("page_token", "无效的分页标记"))
            else:
                after = parsed
        if violations:
            await abort(context, CaseInvalid(violations, subject="查询请求"))
        role = principal.role
        mine = role == "reviewer" and principal.department != ALL_DEPARTMENTS
        scope = principal.jurisdiction if role in ("reviewer", "supervisor") else ""
        size = request.page_size or DEFAULT_PAGE
        tasks = await asyncio.to_thread(
            self._store.tasks, [principal.department] if mine else [], scope,
            list(request.states) or OPEN_STATES, size + 1, after, request.escalated_only,
            request.item_code,
        )  # fmt: skip
        now = self._clock()
        page = tasks[:size]
        return rpb.ListTasksResponse(
            tasks=[task_message(t, 0, now, self._idle) for t in page if may_see(principal, t)],
            next_page_token=encode_task_token(page[-1]) if len(tasks) > size else "",
        )

    async def GetTask(
        self, request: rpb.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> rpb.GetTaskResponse:
        principal = await self._guard(context, "GetTask")
        task, seq = await self._visible(context, principal, "GetTask", request.decision_id)
        return rpb.GetTaskResponse(task=task_message(task, seq, self._clock(), self._idle))

    async def _move(
        self,
        context: grpc.aio.ServicerContext,
        rpc: str,
        decision_id: str,
        action: str,
        response: type[_Moved],
        **carried: Any,
    ) -> _Moved:
        principal = await self._guard(context, rpc)
        seen = await self._visible(context, principal, rpc, decision_id)
        now = self._clock()
        if action in (s.SUSPEND, s.RESUME):
            carried["supervising"] = principal.role in SUPERVISING
        if action == s.ESCALATE and self._auth is not None:
            carried["notify"] = self._auth.department_heads(
                seen[0].department, seen[0].jurisdiction
            )
        pending = new_transition(
            decision_id, Action(action, principal.id, now, **carried), self._node_id,
            self._idle.total_seconds(),
        )  # fmt: skip
        try:
            # Applied in a write transaction (one of two same moves wins); a cancelled call
            # still makes its move, as a queued record is never withdrawn.
            record = await self._store.append_async(pending)
        except MiaopiError as exc:
            log.info("task.refused", action=action, error=type(exc).__name__)
            await abort(context, exc)
        # a rated instant case has no task row
        found = await asyncio.to_thread(self._store.task, decision_id) or seen
        moved = record.body["transition"]
        log.info(
            "task.moved",
            decision_id=decision_id,
            action=action,
            state=moved["to"],
            seq=record.seq,
            overridden=moved.get("overridden", False),
        )
        resp = response(
            task=task_message(found[0], found[1], now, self._idle),
            transition_id=pending.transition_id,
            seq=record.seq,
            inclusion_proof=list(record.inclusion_proof),
        )
        if record.tree_head is not None:
            resp.tree_head.CopyFrom(convert.tree_head(record.tree_head))
        if isinstance(resp, rpb.EscalateTaskResponse):
            resp.alert_seq = await asyncio.to_thread(
                self._store.escalation_alert_seq, pending.transition_id
            )
            log.warning(
                "task.escalated", decision_id=decision_id, alert_seq=resp.alert_seq,
                recipients=len(moved.get("notify", [])),
            )  # fmt: skip
        return resp

    async def ClaimTask(
        self, request: rpb.ClaimTaskRequest, context: grpc.aio.ServicerContext
    ) -> rpb.ClaimTaskResponse:
        return await self._move(
            context, "ClaimTask", request.decision_id, s.CLAIM, rpb.ClaimTaskResponse
        )

    async def ReleaseTask(
        self, request: rpb.ReleaseTaskRequest, context: grpc.aio.ServicerContext
    ) -> rpb.ReleaseTaskResponse:
        return await self._move(
            context, "ReleaseTask", request.decision_id, s.RELEASE, rpb.ReleaseTaskResponse
        )

    async def DecideTask(
        self, request: rpb.DecideTaskRequest, context: grpc.aio.ServicerContext
    ) -> rpb.DecideTaskResponse:
        # An outcome this server has no name for (proto3 enums are open) is refused with the
        # action's other problems by the rule book, as an unnamed one is.
        known = request.outcome in pb.Outcome.values()
        outcome = pb.Outcome.Name(request.outcome) if known else str(request.outcome)
        outcome = outcome.removeprefix("OUTCOME_")
        return await self._move(
            context,
            "DecideTask",
            request.decision_id,
            s.DECIDE,
            rpb.DecideTaskResponse,
            outcome="" if outcome == "UNSPECIFIED" else outcome,
            reasons=tuple(request.reasons),
            legal_basis=tuple(request.legal_basis),
            justification=request.justification,
        )

    async def RequestSupplement(
        self, request: rpb.RequestSupplementRequest, context: grpc.aio.ServicerContext
    ) -> rpb.RequestSupplementResponse:
        return await self._move(
            context,
            "RequestSupplement",
            request.decision_id,
            s.REQUEST_SUPPLEMENT,
            rpb.RequestSupplementResponse,
            materials=tuple(request.materials),
            note=request.note,
        )

    async def SupplyMaterials(
        self, request: rpb.SupplyMaterialsRequest, context: grpc.aio.ServicerContext
    ) -> rpb.SupplyMaterialsResponse:
        return await self._move(
            context,
            "SupplyMaterials",
            request.decision_id,
            s.SUPPLY,
            rpb.SupplyMaterialsResponse,
            materials=tuple(request.materials),
        )

    async def WithdrawCase(
        self, request: rpb.WithdrawCaseRequest, context: grpc.aio.ServicerContext
    ) -> rpb.WithdrawCaseResponse:
        return await self._move(
            context,
            "WithdrawCase",
            request.decision_id,
            s.WITHDRAW,
            rpb.WithdrawCaseResponse,
            note=request.reason,
        )

    async def RateCase(
        self, request: rpb.RateCaseRequest, context: grpc.aio.ServicerContext
    ) -> rpb.RateCaseResponse:
        return await self._move(
            context,
            "RateCase",
            request.decision_id,
            RATE,
            rpb.RateCaseResponse,
            score=request.score,
            note=request.comment,
        )

    async def EscalateTask(
        self, request: rpb.EscalateTaskRequest, context: grpc.aio.ServicerContext
    ) -> rpb.EscalateTaskResponse:
        return await self._move(
            context,
            "EscalateTask",
            request.decision_id,
            s.ESCALATE,
            rpb.EscalateTaskResponse,
            note=request.note,
        )

    async def SuspendTask(
        self, request: rpb.SuspendTaskRequest, context: grpc.aio.ServicerContext
    ) -> rpb.SuspendTaskResponse:
        return await self._move(
            context,
            "SuspendTask",
            request.decision_id,
            s.SUSPEND,
            rpb.SuspendTaskResponse,
            reason=request.reason,
            note=request.note,
        )

    async def ResumeTask(
        self, request: rpb.ResumeTaskRequest, context: grpc.aio.ServicerContext
    ) -> rpb.ResumeTaskResponse:
        return await self._move(
            context,
            "ResumeTask",
            request.decision_id,
            s.RESUME,
            rpb.ResumeTaskResponse,
            note=request.note,
        )

    async def GetKpis(
        self, request: rpb.GetKpisRequest, context: grpc.aio.ServicerContext
    ) -> rpb.GetKpisResponse:
        principal = await self._guard(context, "GetKpis")
        by = request.by or "department"
        bad: list[FieldViolation] = []
        try:
            start, end = kpi.month_bounds(request.month)
        except ValueError as exc:
            bad.append(FieldViolation("month", str(exc)))
        if by not in kpi.GROUPINGS:
            bad.append(FieldViolation("by", f"须为 {', '.join(kpi.GROUPINGS)} 之一"))
        if bad:
            await abort(context, CaseInvalid(bad))
        cases = await asyncio.to_thread(
            self._store.period_cases,
            fixed_time(start),
            fixed_time(end),
            self._approval.opener.closed_at_once,
        )
        scope = principal.jurisdiction if principal.role == "supervisor" else ""
        mine = [c for c in cases if within_jurisdiction(c.task.jurisdiction, scope)]
        rows, total = kpi.ranking(mine, by, self._clock(), self._response_hours)
        return rpb.GetKpisResponse(
            month=request.month,
            by=by,
            response_working_hours=self._response_hours,
            rows=[kpi_message(r, i) for i, r in enumerate(rows, 1)],
            total=kpi_message(total, 0),
        )

    async def WatchAlerts(
        self, request: rpb.WatchAlertsRequest, context: grpc.aio.ServicerContext
    ) -> None:
        principal = await self._guard(context, "WatchAlerts")
        if request.after_seq < 0:
            await abort(context, CaseInvalid([FieldViolation("after_seq", "不能为负数")]))
        scope = alert_scope(principal)
        cursor = request.after_seq
        while True:
            batch = await asyncio.to_thread(self._store.alerts_after, cursor, scope, ALERT_PAGE)
            for a in batch:
                await context.write(rpb.WatchAlertsResponse(alert=alert_message(a)))
                cursor = a.seq
            if len(batch) == ALERT_PAGE:
                continue
            if not request.follow:
                return
            # Polled, not pushed: another process (--workers) may have raised it.
            await asyncio.sleep(self._alert_poll)


def alert_scope(principal: Principal) -> str:
    """The jurisdiction whose alerts a principal watches ("" is everywhere)."""
    return principal.jurisdiction if principal.role == "supervisor" else ""


def alert_message(a: Alert) -> rpb.Alert:
    msg = rpb.Alert(
        seq=a.seq, kind=a.kind, decision_id=a.decision_id, item_code=a.item_code,
        department=a.department, jurisdiction=a.jurisdiction, due_date=a.due_on,
        recipients=list(a.recipients), note=a.note,
    )  # fmt: skip
    msg.raised_at.CopyFrom(convert.timestamp(dt.datetime.fromisoformat(a.raised_at)))
    return msg


def kpi_message(k: kpi.Kpis, rank: int) -> rpb.Kpi:
    msg = rpb.Kpi(
        key=k.key, rank=rank, cases=k.cases, instant_cases=k.instant, overdue=k.overdue,
        overrides=k.overrides, ratings=k.ratings,
    )  # fmt: skip
    optional = {
        "instant_rate": k.instant_rate,
        "approval_rate": k.approval_rate,
        "median_handling_days": k.median_days,
        "p90_handling_days": k.p90_days,
        "on_time_rate": k.on_time_rate,
        "response_rate": k.response_rate,
        "resolution_rate": k.resolution_rate,
        "satisfaction_rate": k.satisfaction_rate,
        "score": k.score,
    }
    for name, value in optional.items():
        if value is not None:
            setattr(msg, name, value)
    return msg


def add_review_to_server(service: ReviewService, server: grpc.aio.Server) -> None:
    add_service(service, server, rpb, "ReviewService")
