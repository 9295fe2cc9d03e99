"""The alert scheduler: every interval, raise the alerts the stored tasks call for, then
lapse the supplement tasks whose materials were due and did not come.

It keeps no state of its own: each pass looks at the tasks as stored and the alerts table
refuses an alert already raised, so a restart (or a deadline that passed while the server was
down) yields each alert once, and with `--workers N` every process may scan and each alert is
still stored and logged once (by the process whose insert took it). The log event carries
codes and dates only, no personal data.

Lapses are transitions by the actor `system`, applied by the store's writer, which checks the
state in its transaction: of several processes (or a restart that repeats a pass) one lapses a
task and the others are refused, so each lapse is on the record once. The alerts are raised
first, so a lapsed task has had its `supplement_overdue` alert.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import structlog

from miaopi_server.audit.chainstore import ChainStore
from miaopi_server.audit.transition import new_transition
from miaopi_server.casework import states as s
from miaopi_server.casework.alerts import Alert
from miaopi_server.casework.deadlines import DEFAULT_DUE_SOON_FRACTION
from miaopi_server.casework.model import Action, supplement_due
from miaopi_server.clock import SHANGHAI, utc_now
from miaopi_server.errors import MiaopiError

log = structlog.get_logger("miaopi.alerts")


def scan(
    store: ChainStore,
    now: dt.datetime,
    due_soon_fraction: float = DEFAULT_DUE_SOON_FRACTION,
) -> list[Alert]:
    """One pass: the alerts raised now, each logged."""
    new = store.raise_alerts(now, due_soon_fraction)
    for a in new:
        log.warning(
            "alert.raised",
            alert_seq=a.seq,
            kind=a.kind,
            decision_id=a.decision_id,
            item_code=a.item_code,
            department=a.department,
            jurisdiction=a.jurisdiction,
            due_on=a.due_on,
        )
    return new


SYSTEM = "system"  # the actor of the scheduler's transitions


def lapse_overdue(store: ChainStore, now: dt.datetime, node_id: str) -> list[str]:
    """Lapse every supplement task whose due day ended before `now` (Asia/Shanghai); the
    decision ids this process lapsed (another may have lapsed the rest)."""
    today = now.astimezone(SHANGHAI).date()
    lapsed = []
    for task in store.pending_supplements():
        due = supplement_due(task)
        if today <= due:
            continue
        note = f"补正期限 {due} 届满，容缺材料未补齐"
        pending = new_transition(
            task.decision_id, Action(s.LAPSE, SYSTEM, now, note=note), node_id, 0
        )
        try:
            record = store.transition(pending).result()
        except MiaopiError:  # supplied or lapsed meanwhile (another worker's pass)
            continue
        lapsed.append(task.decision_id)
        log.info(
            "task.lapsed", decision_id=task.decision_id, item_code=task.item_code,
            due_on=due.isoformat(), seq=record.seq,
        )  # fmt: skip
    return lapsed


def scan_and_lapse(store: ChainStore, now: dt.datetime, node_id: str) -> None:
    scan(store, now)
    lapse_overdue(store, now, node_id)


async def run_scheduler(
    store: ChainStore,
    interval: float,
    node_id: str,
    clock: Callable[[], dt.datetime] = utc_now,
) -> None:
    """Scan at once (catching up on what passed while the server was down), then every
    `interval` seconds until cancelled; a failed pass is logged and retried next time."""
    while True:
        try:
            await asyncio.to_thread(scan_and_lapse, store, clock(), node_id)
        except Exception:  # the store may be busy or closing; the next pass catches up
            log.exception("alert.scan_failed")
        await asyncio.sleep(interval)
