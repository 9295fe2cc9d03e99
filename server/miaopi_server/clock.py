"""The one place that turns a wall-clock instant into the date a case is decided on.

Decisions never read the clock themselves: the edge reads it once per request and passes the
resulting date (and the instant, for decided_at) down."""

from __future__ import annotations

import datetime as dt

SHANGHAI = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")  # no DST since 1991


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def shanghai_today(now: dt.datetime | None = None) -> dt.date:
    """The calendar date in Asia/Shanghai at `now` (default: this instant)."""
    return (now or utc_now()).astimezone(SHANGHAI).date()
