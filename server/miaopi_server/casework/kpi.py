"""KPIs of casework over a period (督查考核), pure: from the cases the store gives, grouped by
item, department, window or jurisdiction.

A case belongs to the period in which its decision was made (Asia/Shanghai). Definitions
(docs/CASEWORK.md, "KPIs"); a rate whose denominator is empty is None, shown as "-":

  instant_rate     cases closed by the rules alone (秒批/即办) / cases
  approval_rate    APPROVE / cases with an outcome (the rules' when closed at once, the
                   reviewer's when decided, APPROVE for a 容缺 approval not withdrawn)
  handling days    working days from opening to closing, pauses excluded: 0 for a case closed
                   at once; over the cases the administration closed (instant + decided)
  on_time_rate     of those, closed on or before the promised due date
  overdue          review tasks past their promised due date when decided, or now if open
  overrides        reviewer decisions against the rules' verdict (不合规办理 check)
  response_rate    review tasks first claimed within N working hours of opening (office hours
                   09:00-17:00 on working days) / review tasks not withdrawn before a claim
  resolution_rate  cases resolved (closed, decided, supplemented) / cases not withdrawn
  satisfaction     ratings of 4 or 5 / ratings (好差评)
The ranking orders groups by the mean of the three rates Beijing ranks districts by
(response, resolution, satisfaction), over those defined.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from miaopi_server.casework import states as s
from miaopi_server.casework.deadlines import (
    OVERDUE_PROMISED,
    OVERDUE_STATUTORY,
    deadlines,
    paused_working_days,
    working_days_between,
)
from miaopi_server.casework.model import APPROVE, Task
from miaopi_server.casework.rating import SATISFIED_FROM
from miaopi_server.clock import SHANGHAI
from miaopi_server.decision.workdays import is_working_day

GROUPINGS = ("item", "department", "window", "jurisdiction")
OFFICE_OPENS, OFFICE_CLOSES = dt.time(9), dt.time(17)
DEFAULT_RESPONSE_HOURS = 8.0  # one working day

RESOLVED = frozenset({s.CLOSED, s.DECIDED, s.SUPPLEMENTED})


@dataclass(frozen=True)
class CaseFacts:
    """One case as the store has it: its task (a case closed at once: kind instant, state
    closed), when it was first claimed and when it reached its final state, its rating."""

    task: Task
    claimed_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    score: int = 0  # 0: not rated


@dataclass(frozen=True)
class Kpis:
    key: str
    cases: int
    instant: int
    instant_rate: float | None
    approval_rate: float | None
    median_days: float | None
    p90_days: int | None
    on_time_rate: float | None
    overdue: int
    overrides: int
    response_rate: float | None
    resolution_rate: float | None
    ratings: int
    satisfaction_rate: float | None
    score: float | None  # the ranking's: mean of response, resolution and satisfaction


def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC of a YYYY-MM month in Asia/Shanghai; ValueError when malformed."""
    year, _, mon = month.partition("-")
    # ASCII digits: str.isdigit() also takes '２０２６' and '²', which int() reads or refuses.
    if len(year) != 4 or len(mon) != 2 or not (year + mon).isascii() or not (year + mon).isdigit():
        raise ValueError(f"month must be YYYY-MM, got {month[:16]!r}")
    # January of year 1 begins before UTC can say (OverflowError), December 9999 ends after.
    if not "0001-02" <= month <= "9999-11":
        raise ValueError(f"month must be between 0001-02 and 9999-11, got {month!r}")
    start = dt.datetime(int(year), int(mon), 1, tzinfo=SHANGHAI)
    nxt = dt.datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=SHANGHAI)
    return start.astimezone(dt.UTC), nxt.astimezone(dt.UTC)


def working_hours_between(start: dt.datetime, end: dt.datetime) -> float:
    """Office hours (09:00-17:00 Asia/Shanghai, working days only) from start to end."""
    a, b = start.astimezone(SHANGHAI), end.astimezone(SHANGHAI)
    total, day = 0.0, a.date()
    while day <= b.date():
        if is_working_day(day)[0]:
            opens = dt.datetime.combine(day, OFFICE_OPENS, SHANGHAI)
            closes = dt.datetime.combine(day, OFFICE_CLOSES, SHANGHAI)
            lo, hi = max(a, opens), min(b, closes)
            if hi > lo:
                total += (hi - lo).total_seconds() / 3600
        day += dt.timedelta(days=1)
    return total


def _day(when: dt.datetime) -> dt.date:
    return when.astimezone(SHANGHAI).date()


def outcome_of(c: CaseFacts) -> str:
    t = c.task
    if t.kind == s.INSTANT:
        return t.rules_outcome
    if t.kind == s.REVIEW:
        return t.outcome if t.state == s.DECIDED else ""
    return APPROVE if t.state != s.WITHDRAWN else ""


def handling_days(c: CaseFacts) -> int | None:
    """Working days the administration took, pauses excluded; None unless it closed the case
    itself (at once, or by a reviewer's decision)."""
    t = c.task
    if t.kind == s.INSTANT:
        return 0
    if t.state != s.DECIDED or c.closed_at is None:
        return None
    closed = _day(c.closed_at)
    return working_days_between(t.opened_on, closed) - paused_working_days(t.pauses, closed)


def _on_time(c: CaseFacts) -> bool:
    t = c.task
    if t.kind == s.INSTANT:
        return True
    assert c.closed_at is not None
    closed = _day(c.closed_at)
    d = deadlines(t.opened_on, t.promised_days, t.statutory_days, t.pauses, closed)
    return closed <= d.promised_due


def _overdue(c: CaseFacts, today: dt.date) -> bool:
    t = c.task
    if t.kind != s.REVIEW or t.state == s.WITHDRAWN:
        return False
    as_of = _day(c.closed_at) if t.state == s.DECIDED and c.closed_at else today
    d = deadlines(t.opened_on, t.promised_days, t.statutory_days, t.pauses, as_of)
    return d.warning in (OVERDUE_PROMISED, OVERDUE_STATUTORY)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def p90(values: list[int]) -> int | None:
    """The nearest-rank 90th percentile: the smallest value at least 90% are not above."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def kpis(key: str, cases: list[CaseFacts], now: dt.datetime, response_hours: float) -> Kpis:
    today = _day(now)
    n = len(cases)
    instant = sum(c.task.kind == s.INSTANT for c in cases)
    outcomes = [o for o in map(outcome_of, cases) if o]
    handled = [c for c in cases if handling_days(c) is not None]
    days = [d for d in map(handling_days, handled) if d is not None]
    reviews = [c for c in cases if c.task.kind == s.REVIEW]
    awaited = [c for c in reviews if c.claimed_at is not None or c.task.state != s.WITHDRAWN]
    responded = sum(
        c.claimed_at is not None
        and working_hours_between(c.task.opened_at, c.claimed_at) <= response_hours
        for c in awaited
    )
    not_withdrawn = [c for c in cases if c.task.state != s.WITHDRAWN]
    rated = [c.score for c in cases if c.score]
    response = _rate(responded, len(awaited))
    resolution = _rate(sum(c.task.state in RESOLVED for c in not_withdrawn), len(not_withdrawn))
    satisfaction = _rate(sum(x >= SATISFIED_FROM for x in rated), len(rated))
    three = [r for r in (response, resolution, satisfaction) if r is not None]
    return Kpis(
        key=key,
        cases=n,
        instant=instant,
        instant_rate=_rate(instant, n),
        approval_rate=_rate(outcomes.count(APPROVE), len(outcomes)),
        median_days=float(statistics.median(days)) if days else None,
        p90_days=p90(days),
        on_time_rate=_rate(sum(map(_on_time, handled)), len(handled)),
        overdue=sum(_overdue(c, today) for c in cases),
        overrides=sum(c.task.overridden for c in cases),
        response_rate=response,
        resolution_rate=resolution,
        ratings=len(rated),
        satisfaction_rate=satisfaction,
        score=sum(three) / len(three) if three else None,
    )


_KEYS: dict[str, Callable[[Task], str]] = {
    "item": lambda t: t.item_code,
    "department": lambda t: t.department,
    "window": lambda t: t.window_id,
    "jurisdiction": lambda t: t.jurisdiction,
}


def ranking(
    cases: Iterable[CaseFacts], by: str, now: dt.datetime, response_hours: float
) -> tuple[list[Kpis], Kpis]:
    """KPIs per group, best first (by score, then more cases, then key), and over all."""
    if by not in _KEYS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}")
    everything = list(cases)
    groups: dict[str, list[CaseFacts]] = {}
    for c in everything:
        groups.setdefault(_KEYS[by](c.task), []).append(c)
    rows = [kpis(k, g, now, response_hours) for k, g in groups.items()]
    rows.sort(key=lambda r: (-(r.score if r.score is not None else -1.0), -r.cases, r.key))
    return rows, kpis("", everything, now, response_hours)
