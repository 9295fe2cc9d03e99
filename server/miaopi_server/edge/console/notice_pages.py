"""The printable decision notice of a case (docs/NOTICE.md), as an A4 page or a PDF.

Whoever may read the decision (GetDecision's checks) may print its notice; the page calls the
same servicer methods as the case view and hands the proto3 JSON to the notice renderer.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from google.protobuf import json_format

from miaopi.v1 import approval_pb2 as pb
from miaopi_server.edge.console.base import console_of, context, refusal_page
from miaopi_server.edge.console.calls import Refused
from miaopi_server.notice.html import NOTICE_CSS, render_notice_html
from miaopi_server.notice.pdf import render_notice_pdf

STYLESHEET = "/notice.css"  # served, since the console's CSP forbids inline styles


async def _record(request: web.Request) -> dict[str, Any] | web.Response:
    console, ctx = console_of(request), context(request)
    decision_id = request.match_info["decision_id"]
    try:
        decided = await console.approval.GetDecision(
            pb.GetDecisionRequest(decision_id=decision_id), ctx
        )
    except Refused as exc:
        return refusal_page(request, exc, "决定通知书")
    record: dict[str, Any] = {"decision": _json(decided.decision)}
    if not decided.case_purged:
        record["case"] = _json(decided.case)
    try:
        got = await console.approval.GetItem(
            pb.GetItemRequest(item_code=decided.decision.item_code), ctx
        )
        record["item"] = {"name": got.item.name, "department": got.item.department}
    except Refused:  # an item no longer served: the notice names it by its code
        pass
    return record


def _json(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


async def page(request: web.Request) -> web.StreamResponse:
    record = await _record(request)
    if isinstance(record, web.Response):
        return record
    html = render_notice_html(record, stylesheet_href=STYLESHEET)
    return web.Response(text=html, content_type="text/html", charset="utf-8")


async def pdf(request: web.Request) -> web.StreamResponse:
    record = await _record(request)
    if isinstance(record, web.Response):
        return record
    body = render_notice_pdf(record)
    return web.Response(
        body=body,
        content_type="application/pdf",
        headers={"Content-Disposition": 'attachment; filename="notice.pdf"'},
    )


async def stylesheet(request: web.Request) -> web.StreamResponse:
    return web.Response(text=NOTICE_CSS, content_type="text/css", charset="utf-8")
