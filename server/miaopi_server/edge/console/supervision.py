"""The supervision page: live alerts (Server-Sent Events fed by ReviewService.WatchAlerts,
the stream and cursor of the gRPC API), the month's KPIs with charts and the ranking, and
the KPIs as CSV (the columns of `miaopi kpi --csv`)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Any

from aiohttp import web

from miaopi.v1 import review_pb2 as rpb
from miaopi_server.clock import shanghai_today, utc_now
from miaopi_server.edge.console import labels
from miaopi_server.edge.console.base import console_of, context, refusal_page, render
from miaopi_server.edge.console.calls import ConsoleContext, Refused
from miaopi_server.edge.console.charts import kpi_charts

SHOWN_ALERTS = 50  # the page opens with the latest; the stream adds the rest
# As `miaopi kpi --csv` (clients/miaopi_client/kpi_cli.py; tests/test_console_http.py checks
# they agree): column, Kpi field, whether it is a rate that may be absent.
CSV_COLUMNS = [
    ("rank", "rank"), ("key", "key"), ("cases", "cases"), ("instant", "instant_rate"),
    ("approved", "approval_rate"), ("median_days", "median_handling_days"),
    ("p90_days", "p90_handling_days"), ("on_time", "on_time_rate"), ("overdue", "overdue"),
    ("overrides", "overrides"), ("response", "response_rate"),
    ("resolution", "resolution_rate"), ("ratings", "ratings"),
    ("satisfaction", "satisfaction_rate"), ("score", "score"),
]  # fmt: skip
_OPTIONAL = {f.name for f in rpb.Kpi.DESCRIPTOR.fields if f.has_presence}


def alert_json(a: rpb.Alert) -> dict[str, Any]:
    return {
        "seq": a.seq,
        "kind": a.kind,
        "kind_label": labels.ALERT_KINDS.get(a.kind, a.kind),
        "decision_id": a.decision_id,
        "item_code": a.item_code,
        "department": a.department,
        "jurisdiction": a.jurisdiction,
        "due_date": a.due_date,
        "raised_at": labels.local_time(a.raised_at),
    }


async def _stored_alerts(request: web.Request) -> list[rpb.Alert]:
    got: list[rpb.Alert] = []

    async def keep(message: rpb.WatchAlertsResponse) -> None:
        got.append(message.alert)
        del got[:-SHOWN_ALERTS]

    ctx = context(request)
    ctx.on_write = keep
    await console_of(request).review.WatchAlerts(rpb.WatchAlertsRequest(after_seq=0), ctx)
    return got


def _month_and_by(request: web.Request) -> tuple[str, str]:
    month = request.query.get("month") or shanghai_today(utc_now()).strftime("%Y-%m")
    return month, request.query.get("by") or "department"


async def page(request: web.Request) -> web.StreamResponse:
    month, by = _month_and_by(request)
    try:
        kpis = await console_of(request).review.GetKpis(
            rpb.GetKpisRequest(month=month, by=by), context(request)
        )
    except Refused as refused:
        if not refused.fields:
            return refusal_page(request, refused, "督查")
        return render(request, "supervision.html", 400, month=month, by=by, kpis=None,
                      charts=[], alerts=[], last_seq=0, errors=refused.fields)  # fmt: skip
    alerts = await _stored_alerts(request)
    return render(
        request, "supervision.html", month=month, by=by, kpis=kpis, charts=kpi_charts(
            list(kpis.rows)), alerts=[alert_json(a) for a in reversed(alerts)],
        last_seq=alerts[-1].seq if alerts else 0, errors={},
    )  # fmt: skip


async def alert_stream(request: web.Request) -> web.StreamResponse:
    """text/event-stream of the alerts after `after` (or the Last-Event-ID the browser sends
    when it reconnects), then each new one as it is raised."""
    console = console_of(request)
    raw = request.headers.get("Last-Event-ID") or request.query.get("after", "0")
    after = int(raw) if raw.isdigit() else -1  # WatchAlerts refuses it, naming after_seq
    ctx = context(request)
    try:  # refused before the stream starts: an HTTP status, not an event
        await console.approval.guard(ctx, "WatchAlerts")
        if after < 0:
            await console.review.WatchAlerts(rpb.WatchAlertsRequest(after_seq=-1), ctx)
    except Refused as refused:
        return refusal_page(request, refused, "实时提醒")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")

    async def send(message: rpb.WatchAlertsResponse) -> None:
        a = message.alert
        data = json.dumps(alert_json(a), ensure_ascii=False)
        await response.write(f"id: {a.seq}\nevent: alert\ndata: {data}\n\n".encode())

    streaming = ConsoleContext(ctx.credential, ctx.remote, send)
    task = asyncio.current_task()
    assert task is not None
    console.streams.add(task)  # cancelled when the console stops
    try:
        await console.review.WatchAlerts(
            rpb.WatchAlertsRequest(after_seq=after, follow=True), streaming
        )
    except (Refused, ConnectionResetError):
        pass  # refused midway (rate limit) or the browser left; EventSource reconnects
    finally:
        console.streams.discard(task)
    return response


def _cell(row: rpb.Kpi, field: str) -> str:
    if field in _OPTIONAL and not row.HasField(field):
        return ""
    return str(getattr(row, field))


async def kpi_csv(request: web.Request) -> web.StreamResponse:
    month, by = _month_and_by(request)
    try:
        kpis = await console_of(request).review.GetKpis(
            rpb.GetKpisRequest(month=month, by=by), context(request)
        )
    except Refused as refused:
        return refusal_page(request, refused, "导出")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c for c, _ in CSV_COLUMNS])
    for r in [*kpis.rows, kpis.total]:
        writer.writerow([_cell(r, f) for _, f in CSV_COLUMNS])
    filename = f"kpi-{kpis.month}-{kpis.by}.csv"
    # A byte order mark, so spreadsheet programs read the Chinese keys as UTF-8.
    return web.Response(
        body=("\ufeff" + out.getvalue()).encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
