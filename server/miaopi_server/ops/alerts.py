"""The alert scheduler: every interval, raise the alerts the stored tasks call for.

It keeps no state of its own: each pass looks at the tasks as stored and the alerts table
refuses an alert already raised, so a restart (or a deadline that passed while the server was
down) yields each alert once, and with `--workers N` every process may scan and each alert is
still stored and logged once (by the process whose insert took it). The log event carries
codes and dates only, no personal data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import structlog

from miaopi_server.audit.chainstore import ChainStore
from miaopi_server.casework.alerts import Alert
from miaopi_server.casework.deadlines import DEFAULT_DUE_SOON_FRACTION
from miaopi_server.clock import utc_now

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


async def run_scheduler(
    store: ChainStore, interval: float, clock: Callable[[], dt.datetime] = utc_now
) -> None:
    """Scan at once (catching up on what passed while the server was down), then every
    `interval` seconds until cancelled; a failed pass is logged and retried next time."""
    while True:
        try:
            await asyncio.to_thread(scan, store, clock())
        except Exception:  # the store may be busy or closing; the next pass catches up
            log.exception("alert.scan_failed")
        await asyncio.sleep(interval)
