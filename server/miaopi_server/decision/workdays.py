"""Working-day arithmetic for statutory time limits.

行政许可法 Art. 82 counts limits in working days, so statutory holidays and the
weekend make-up workdays (调休) both matter. The State Council publishes each
year's schedule only late in the previous year; `chinese_calendar` carries the
published years and we fall back to Monday-Friday elsewhere, flagging the
result as estimated so a due date is never presented as certain when it is not.

A time limit is at most MAX_TIME_LIMIT_DAYS working days (the loader refuses longer ones) and
an as-of date at most fieldtypes.LATEST_AS_OF, so a due date is always a date; a call outside
those bounds is a ValueError, never an OverflowError or an endless loop.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, timedelta

import chinese_calendar

from miaopi_server.rules.fieldtypes import MAX_TIME_LIMIT_DAYS

__all__ = ["DueDate", "add_working_days", "is_working_day"]

_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class DueDate:
    date: date
    estimated: bool  # some day counted lies in a year without a published schedule


@functools.lru_cache(maxsize=8192)  # the library scans its whole holiday table on every call
def is_working_day(d: date) -> tuple[bool, bool]:
    """Return (working, estimated) for one day."""
    try:
        return bool(chinese_calendar.is_workday(d)), False
    except NotImplementedError:
        # The library raises this for years outside its data (before 2004, after the
        # latest published year); plain Monday-Friday is the best guess there.
        return d.weekday() < 5, True


@functools.lru_cache(maxsize=4096)  # pure: the same (date, limit) recurs across many cases
def add_working_days(start: date, days: int) -> DueDate:
    """The days-th working day after start; start itself is never counted."""
    if not 1 <= days <= MAX_TIME_LIMIT_DAYS:
        raise ValueError(f"days must be within 1..{MAX_TIME_LIMIT_DAYS}, got {days}")
    current, estimated = start, False
    while days:
        if current == date.max:  # unreachable from a valid as-of date (fieldtypes.py)
            raise ValueError(f"no working day {days} days after {start} in the calendar")
        current += _ONE_DAY
        working, guessed = is_working_day(current)
        estimated = estimated or guessed
        if working:
            days -= 1
    return DueDate(date=current, estimated=estimated)
