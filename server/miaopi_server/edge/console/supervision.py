"""The supervision page: live alerts (Server-Sent Events fed by ReviewService.WatchAlerts,
the stream and cursor of the gRPC API), the month's KPIs with charts and the ranking, and
the KPIs as CSV (the columns of `miaopi kpi --csv`)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
from typing import Any

import structlog
from aiohttp import web

from miaopi.v1 import review_pb2 as rpb
from miaopi_server.clock import shanghai_today, utc_now
from miaopi_server.edge.console import labels
from miaopi_server.edge.console.base import (
    console_of,
    context,
    refusal_page,
    render,
    session_of,
)
from miaopi_server.edge.console.calls import ConsoleContext, Refused
from miaopi_server.edge.console.charts import kpi_charts
from miaopi_server.edge.console.sessions import STREAMS_PER_SESSION
from miaopi_server.edge.review import alert_scope

log = structlog.get_logger("miaopi.console")

SHOWN_ALERTS = 50  # the page opens with the latest; the stream adds the rest
# A stream ends after this long; the browser reconnects from its Last-Event-ID, re-checked
# as a new request (session, role), losing nothing.
STREAM_SECONDS = 600.0
LIVE_CHECK_SECONDS = 1.0  # how often a quiet stream checks its session and connection
MAX_SEQ = 2**63 - 1  # after_seq is an int64
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


async def _latest_alerts(request: web.Request) -> list[rpb.Alert]:
    """The latest SHOWN_ALERTS alerts the principal may watch, oldest first: WatchAlerts from
    a cursor just before them, so a page load reads as many rows however long the history."""
    console, ctx = console_of(request), context(request)
    principal = await console.approval.guard(ctx, "WatchAlerts")
    cursor = await asyncio.to_thread(
        console.store.latest_alerts_cursor, alert_scope(principal), SHOWN_ALERTS
    )
    got: list[rpb.Alert] = []

    async def keep(message: rpb.WatchAlertsResponse) -> None:
        got.append(message.alert)
        del got[:-SHOWN_ALERTS]  # some raised meanwhile: still the latest

    ctx.on_write = keep
    await console.review.WatchAlerts(rpb.WatchAlertsRequest(after_seq=cursor), ctx)
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
    try:
        alerts = await _latest_alerts(request)
    except Refused as refused:
        return refusal_page(request, refused, "督查")
    return render(
        request, "supervision.html", month=month, by=by, kpis=kpis, charts=kpi_charts(
            list(kpis.rows)), alerts=[alert_json(a) for a in reversed(alerts)],
        last_seq=alerts[-1].seq if alerts else 0, errors={},
    )  # fmt: skip


def stream_cursor(raw: str) -> int:
    """`after` / Last-Event-ID as an alert seq: ASCII digits within int64; anything else
    ("²", 2**63) is -1, refused (400) before the stream starts."""
    if raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_SEQ)) and int(raw) <= MAX_SEQ:
        return int(raw)
    return -1


class _SessionEnded(Exception):
    """The stream's session ended while an alert was on its way."""


async def alert_stream(request: web.Request) -> web.StreamResponse:
    """text/event-stream of the alerts after `after` (or the Last-Event-ID the browser sends
    when it reconnects), then each new one as it is raised, while the session that opened it
    is signed in and the browser connected, for at most STREAM_SECONDS."""
    console, session = console_of(request), session_of(request)
    after = stream_cursor(request.headers.get("Last-Event-ID") or request.query.get("after", "0"))
    ctx = context(request)
    try:  # refused before the stream starts: an HTTP status, not an event
        await console.approval.guard(ctx, "WatchAlerts")
    except Refused as refused:
        return refusal_page(request, refused, "实时提醒")
    if after < 0:
        return render(
            request, "error.html", 400, title="实时提醒",
            message=f"起始位置（after 或 Last-Event-ID）须为 0 至 {MAX_SEQ} 的整数。",
        )  # fmt: skip
    loop, ended = asyncio.get_running_loop(), asyncio.Event()

    def end() -> None:  # the session ended (sign-out, expiry): may be called off the loop
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(ended.set)

    if not console.sessions.add_stream(session.id, end):
        return render(
            request, "error.html", 429, title="实时提醒",
            message=f"本次登录已打开 {STREAMS_PER_SESSION} 个实时提醒，请关闭多余的页面后重试。",
        )  # fmt: skip
    task = asyncio.current_task()
    assert task is not None
    console.streams.add(task)  # cancelled when the console stops
    try:
        return await _stream(request, ctx, after, ended)
    finally:
        console.streams.discard(task)
        console.sessions.remove_stream(session.id, end)


async def _stream(
    request: web.Request, ctx: ConsoleContext, after: int, ended: asyncio.Event
) -> web.StreamResponse:
    console, session_id = console_of(request), session_of(request).id
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")

    async def send(message: rpb.WatchAlertsResponse) -> None:
        if not console.sessions.live(session_id):
            raise _SessionEnded
        a = message.alert
        data = json.dumps(alert_json(a), ensure_ascii=False)
        await response.write(f"id: {a.seq}\nevent: alert\ndata: {data}\n\n".encode())

    def connected() -> bool:  # a quiet stream writes nothing, so it would not notice
        transport = request.transport
        return transport is not None and not transport.is_closing()

    streaming = ConsoleContext(ctx.credential, ctx.remote, send)
    watch = asyncio.create_task(
        console.review.WatchAlerts(rpb.WatchAlertsRequest(after_seq=after, follow=True), streaming)
    )
    stop = asyncio.create_task(ended.wait())
    try:
        async with asyncio.timeout(STREAM_SECONDS):
            while console.sessions.live(session_id) and connected():
                done, _ = await asyncio.wait(
                    {watch, stop}, timeout=LIVE_CHECK_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                if done:
                    break
    except TimeoutError:
        pass  # long enough: EventSource reconnects from its Last-Event-ID
    finally:
        watch.cancel()
        stop.cancel()
        outcome, _ = await asyncio.gather(watch, stop, return_exceptions=True)
    # Refused midway (rate limit), the browser left, the session ended: the stream ends.
    expected = (Refused, ConnectionResetError, _SessionEnded, asyncio.CancelledError)
    if isinstance(outcome, BaseException) and not isinstance(outcome, expected):
        # The answer has started: an error page cannot replace it; end it, and say why.
        log.error("console.stream_failed", exc_info=outcome)
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
