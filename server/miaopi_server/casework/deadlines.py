"""Working-day deadlines of a task, with the clock stopped while it is paused.

A task opened on day D (Asia/Shanghai) is due on the n-th working day after D (D itself is not
counted, as for review_due_date), n being the item's promised or statutory limit plus the
working days the clock stood still: every pause (a supplement the reviewer awaits; the periods
行政许可法 Art. 45 excludes) counts the working days after its first day up to its last (or
today while it lasts). Warning states come from the working days used so far.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from miaopi_server.decision.workdays import add_working_days, is_working_day
from miaopi_server.rules.fieldtypes import MAX_TIME_LIMIT_DAYS

ON_TIME = ""
DUE_SOON = "due_soon"
OVERDUE_PROMISED = "overdue_promised"
OVERDUE_STATUTORY = "overdue_statutory"
DEFAULT_DUE_SOON_FRACTION = 0.8

_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Pause:
    """A period the clock stood still: `kind` supplement | art45, with its reason; `ended_on`
    None while it lasts."""

    kind: str
    reason: str
    started_on: dt.date
    ended_on: dt.date | None = None


@dataclass(frozen=True)
class Deadlines:
    promised_due: dt.date
    statutory_due: dt.date
    used_days: int  # working days counted so far, pauses excluded
    paused_days: int
    warning: str  # ON_TIME | DUE_SOON | OVERDUE_PROMISED | OVERDUE_STATUTORY
    estimated: bool  # some day counted lies in a year without a published schedule


def working_days_between(after: dt.date, through: dt.date) -> int:
    """Working days d with after < d <= through."""
    count, day = 0, after
    while day < through:
        day += _DAY
        count += is_working_day(day)[0]
    return count


def paused_working_days(pauses: tuple[Pause, ...], today: dt.date) -> int:
    return sum(working_days_between(p.started_on, p.ended_on or today) for p in pauses)


def _due(opened_on: dt.date, days: int) -> tuple[dt.date, bool]:
    d = add_working_days(opened_on, min(max(days, 1), MAX_TIME_LIMIT_DAYS))
    return d.date, d.estimated


def deadlines(
    opened_on: dt.date,
    promised_days: int,
    statutory_days: int,
    pauses: tuple[Pause, ...],
    today: dt.date,
    due_soon_fraction: float = DEFAULT_DUE_SOON_FRACTION,
) -> Deadlines:
    """Due dates and warning state of a task as of `today`. A limit of 0 (an on-the-spot
    item sent to review) counts as one working day, as review_due_date does."""
    paused = paused_working_days(pauses, today)
    promised = max(promised_days, 1)
    statutory = max(statutory_days, promised)
    promised_due, est1 = _due(opened_on, promised + paused)
    statutory_due, est2 = _due(opened_on, statutory + paused)
    used = working_days_between(opened_on, today) - paused
    if today > statutory_due:
        warning = OVERDUE_STATUTORY
    elif today > promised_due:
        warning = OVERDUE_PROMISED
    elif used >= due_soon_fraction * promised:
        warning = DUE_SOON
    else:
        warning = ON_TIME
    return Deadlines(promised_due, statutory_due, max(used, 0), paused, warning, est1 or est2)
