"""The review queue and the case view, with the actions on a case. Every read and every
action is the ReviewService/ApprovalService method the gRPC server runs (calls.py)."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from google.protobuf import json_format

from miaopi.v1 import approval_pb2 as pb
from miaopi.v1 import review_pb2 as rpb
from miaopi_server.casework import states as s
from miaopi_server.edge.console.base import (
    HTTP_STATUS,
    SESSION,
    console_of,
    context,
    form_of,
    refusal_page,
    render,
    session_of,
)
from miaopi_server.edge.console.calls import Refused

Form = dict[str, str]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class CaseAction:
    """One button of the case view: the RPC it calls and the request its form makes."""

    rpc: str
    request: Callable[[str, Form], Any]
    done: str  # the notice shown after it


def _decide(decision_id: str, form: Form) -> rpb.DecideTaskRequest:
    outcome = form.get("outcome", "")
    return rpb.DecideTaskRequest(
        decision_id=decision_id,
        outcome=pb.Outcome.Value(f"OUTCOME_{outcome}") if outcome in ("APPROVE", "REJECT") else 0,
        reasons=_lines(form.get("reasons", "")),
        legal_basis=_lines(form.get("legal_basis", "")),
        justification=form.get("justification", "").strip(),
    )


# The path segment after /cases/<id>/ -> the action. A new action is one entry here and one
# form in case.html.
ACTIONS: dict[str, CaseAction] = {
    "claim": CaseAction("ClaimTask", lambda d, f: rpb.ClaimTaskRequest(decision_id=d), "已认领"),
    "release": CaseAction(
        "ReleaseTask", lambda d, f: rpb.ReleaseTaskRequest(decision_id=d), "已退回队列"
    ),
    "decide": CaseAction("DecideTask", _decide, "决定已作出并记入审计链"),
    "supplement": CaseAction(
        "RequestSupplement",
        lambda d, f: rpb.RequestSupplementRequest(
            decision_id=d, materials=_lines(f.get("materials", "")), note=f.get("note", "").strip()
        ),
        "已一次性告知需补正的材料",
    ),
    "supply": CaseAction(
        "SupplyMaterials",
        lambda d, f: rpb.SupplyMaterialsRequest(
            decision_id=d, materials=_lines(f.get("materials", ""))
        ),
        "材料已补交",
    ),
    "withdraw": CaseAction(
        "WithdrawCase",
        lambda d, f: rpb.WithdrawCaseRequest(decision_id=d, reason=f.get("note", "").strip()),
        "办件已撤回",
    ),
    "suspend": CaseAction(
        "SuspendTask",
        lambda d, f: rpb.SuspendTaskRequest(
            decision_id=d, reason=f.get("reason", ""), note=f.get("note", "").strip()
        ),
        "已中止计时（行政许可法第四十五条）",
    ),
    "resume": CaseAction(
        "ResumeTask",
        lambda d, f: rpb.ResumeTaskRequest(decision_id=d, note=f.get("note", "").strip()),
        "已恢复计时",
    ),
    "escalate": CaseAction(
        "EscalateTask",
        lambda d, f: rpb.EscalateTaskRequest(decision_id=d, note=f.get("note", "").strip()),
        "已督办，经办人和部门负责人已收到通知",
    ),
}


QUEUE_PAGE = 100  # tasks per page of the queue; "更多" follows ListTasks' next_page_token


def _queue_link(item: str, state: str, page_token: str = "") -> str:
    query = {k: v for k, v in (("item", item), ("state", state), ("page", page_token)) if v}
    return "/queue" + (f"?{urllib.parse.urlencode(query)}" if query else "")


async def queue(request: web.Request) -> web.StreamResponse:
    console, ctx = console_of(request), context(request)
    item, state = request.query.get("item", ""), request.query.get("state", "")
    page_token = request.query.get("page", "")
    try:
        items = (await console.approval.ListItems(pb.ListItemsRequest(), ctx)).items
        listed = await console.review.ListTasks(
            rpb.ListTasksRequest(
                states=[state] if state else [], item_code=item, page_size=QUEUE_PAGE,
                page_token=page_token,
            ),
            ctx,
        )  # fmt: skip
    except Refused as refused:
        if session_of(request).role == "window" and refused.code.name == "PERMISSION_DENIED":
            return render(request, "queue.html", tasks=None, items=[], item=item, state=state,
                          errors={}, refused=refused)  # fmt: skip
        errors = refused.fields
        if not errors:
            return refusal_page(request, refused, "办件队列")
        return render(request, "queue.html", 400, tasks=[], items=[], item=item, state=state,
                      errors=errors, refused=refused, first=_queue_link(item, state))  # fmt: skip
    more = _queue_link(item, state, listed.next_page_token) if listed.next_page_token else ""
    return render(
        request, "queue.html", tasks=list(listed.tasks), items=items, item=item, state=state,
        errors={}, refused=None, item_names={i.code: i.name for i in items}, more=more,
        first=_queue_link(item, state) if page_token else "",
    )  # fmt: skip


async def open_case(request: web.Request) -> web.StreamResponse:
    """The 'open a case by its decision id' form (windows have no queue)."""
    decision_id = request.query.get("decision_id", "").strip()
    if not decision_id:
        raise web.HTTPSeeOther("/queue")
    raise web.HTTPSeeOther(f"/cases/{decision_id}")


def facts_table(case: dict[str, Any], decision: pb.Decision) -> list[dict[str, Any]]:
    """Every fact of the case and every derived fact, dotted, with where it came from."""
    origin = {p.path: p for p in decision.provenance}
    rows: list[dict[str, Any]] = []

    def walk(prefix: str, node: Any, default_origin: str) -> None:
        if isinstance(node, dict):
            for key in sorted(node):
                walk(f"{prefix}.{key}" if prefix else key, node[key], default_origin)
            return
        p = origin.get(prefix)
        rows.append({
            "path": prefix,
            "value": node,
            "origin": p.origin if p else default_origin,
            "source": p.source if p else "",
            "record_id": p.record_id if p else "",
            "fetched_at": p.fetched_at if p else "",
            "note": p.note if p else "",
        })  # fmt: skip

    walk("", case.get("facts", {}), "window")
    walk("", json_format.MessageToDict(decision.derived_facts), "derived")
    return rows


async def _case_page(
    request: web.Request, status: int = 200, errors: dict[str, str] | None = None,
    form: Form | None = None, action: str = "", refused: Refused | None = None,
) -> web.StreamResponse:  # fmt: skip
    console, ctx = console_of(request), context(request)
    decision_id = request.match_info["decision_id"]
    try:
        got = await console.review.GetTask(rpb.GetTaskRequest(decision_id=decision_id), ctx)
        decided = await console.approval.GetDecision(
            pb.GetDecisionRequest(decision_id=decision_id), ctx
        )
    except Refused as exc:
        return refusal_page(request, exc, "办件")
    task, decision = got.task, decided.decision
    history = await asyncio.to_thread(console.store.history, decision_id, decision.receipt.seq)
    case = json_format.MessageToDict(decided.case) if not decided.case_purged else {}
    session = request[SESSION]
    return render(
        request, "case.html", status, task=task, decision=decision, history=history,
        facts=facts_table(case, decision), purged=decided.case_purged,
        errors=errors or {}, form=form or {}, action=action, refused=refused,
        mine=task.assignee == session.principal_id, role=session.role, s=s,
    )  # fmt: skip


async def case(request: web.Request) -> web.StreamResponse:
    return await _case_page(request)


async def act(request: web.Request) -> web.StreamResponse:
    name = request.match_info["action"]
    action = ACTIONS.get(name)
    if action is None:
        raise web.HTTPNotFound()
    decision_id = request.match_info["decision_id"]
    form = form_of(request)
    console = console_of(request)
    method = getattr(console.review, action.rpc)
    try:
        await method(action.request(decision_id, form), context(request))
    except Refused as refused:
        if refused.code.name in ("UNAUTHENTICATED", "PERMISSION_DENIED", "NOT_FOUND"):
            return refusal_page(request, refused, "无法办理")
        status = 400 if refused.fields else HTTP_STATUS.get(refused.code, 500)
        return await _case_page(request, status, refused.fields, form, name, refused)
    session_of(request).flash.append(action.done)
    raise web.HTTPSeeOther(f"/cases/{decision_id}")
