"""Date arithmetic of the condition language, counted the way Chinese law counts periods.

民法典 Art. 200-204: a period in years or months ends on the corresponding day of the last
month; when that month lacks the day (31 April, 29 February in a common year) the period ends on
the month's last day. The day the period starts from is not counted (Art. 201), so a period in
days is plain calendar subtraction: 30 days after 1 January is 31 January. So
`d + 1 year` of 2024-02-29 is 2025-02-28, `d - 1 month` of 2025-03-31 is 2025-02-28, and
`d - 1 year` of 2025-02-28 is 2024-02-28 (the corresponding day exists in a leap year).

A shift whose result lies outside the calendar Python represents (years 1..9999) has no value;
the condition language treats it like a missing fact (a comparison with it is false).
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Literal

Unit = Literal["day", "month", "year"]

# The words a rule author writes after a number; singular and plural mean the same.
UNITS: dict[str, Unit] = {
    "day": "day",
    "days": "day",
    "month": "month",
    "months": "month",
    "year": "year",
    "years": "year",
}


def shift(date: dt.date, amount: int, unit: Unit) -> dt.date | None:
    """`date` moved by `amount` (negative: back) days, months or years; None off the calendar."""
    try:
        if unit == "day":
            return date + dt.timedelta(days=amount)
        months = amount * (12 if unit == "year" else 1)
        index = date.year * 12 + (date.month - 1) + months
        year, month = divmod(index, 12)
        month += 1
        if not dt.MINYEAR <= year <= dt.MAXYEAR:
            return None
        last = calendar.monthrange(year, month)[1]
        return dt.date(year, month, min(date.day, last))  # no such day: the month's last day
    except OverflowError:
        return None


def shift_text(text: str, amount: int, unit: Unit) -> str | None:
    """`shift` on an ISO date text, as facts and literals hold dates."""
    moved = shift(dt.date.fromisoformat(text), amount, unit)
    return None if moved is None else moved.isoformat()


def days_between(a: str, b: str) -> int:
    """Whole days between two ISO dates, never negative: the first day is not counted."""
    return abs((dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days)
