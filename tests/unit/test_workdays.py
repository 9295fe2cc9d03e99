"""Unit tests for miaopi_server.decision.workdays.

Expected dates follow the 2025/2026 schedules carried by chinese_calendar 1.11
(State Council notices); the 调休 make-up workdays used below are
2026-01-04 (Sun), 02-14 (Sat), 02-28 (Sat), 05-09 (Sat), 09-20 (Sun), 10-10 (Sat).
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import chinese_calendar
import pytest

from miaopi_server.decision.workdays import DueDate, add_working_days, is_working_day


class TestIsWorkingDay:
    @pytest.mark.parametrize(
        ("day", "expected"),
        [
            (date(2026, 3, 9), (True, False)),  # ordinary Monday
            (date(2026, 3, 7), (False, False)),  # ordinary Saturday
            (date(2026, 2, 17), (False, False)),  # Spring Festival, Tuesday
            (date(2026, 10, 1), (False, False)),  # National Day, Thursday
            (date(2026, 10, 10), (True, False)),  # 调休 Saturday
            (date(2026, 9, 20), (True, False)),  # 调休 Sunday
            (date(2027, 1, 4), (True, True)),  # no data yet: Monday guessed working
            (date(2027, 1, 2), (False, True)),  # no data yet: Saturday guessed rest
            (date(2003, 6, 2), (True, True)),  # before the library's data starts
        ],
    )
    def test_classification(self, day: date, expected: tuple[bool, bool]) -> None:
        """Days follow the official schedule, or Monday-Friday flagged as estimated."""
        assert is_working_day(day) == expected

    def test_make_up_days_really_are_weekends(self) -> None:
        """The 调休 days used in these tests are weekend days the library marks as workdays."""
        for day in (date(2026, 2, 14), date(2026, 2, 28), date(2026, 10, 10), date(2026, 9, 20)):
            assert day.weekday() >= 5
            assert chinese_calendar.is_workday(day)


class TestAddWorkingDays:
    @pytest.mark.parametrize(
        ("start", "days", "due"),
        [
            # Weekends are skipped; the start day is never counted.
            (date(2026, 3, 6), 1, date(2026, 3, 9)),
            (date(2026, 3, 7), 1, date(2026, 3, 9)),
            (date(2026, 3, 9), 1, date(2026, 3, 10)),
            (date(2026, 3, 2), 5, date(2026, 3, 9)),
            (date(2026, 3, 2), 20, date(2026, 3, 30)),
            # Spring Festival 2026-02-15..23, make-up Saturdays 02-14 and 02-28.
            (date(2026, 2, 13), 1, date(2026, 2, 14)),
            (date(2026, 2, 13), 2, date(2026, 2, 24)),
            (date(2026, 2, 14), 1, date(2026, 2, 24)),
            (date(2026, 2, 27), 1, date(2026, 2, 28)),
            (date(2026, 2, 12), 5, date(2026, 2, 26)),
            # Mid-Autumn 09-25..27 and National Day 10-01..07, make-up 09-20 and 10-10.
            (date(2026, 9, 18), 1, date(2026, 9, 20)),
            (date(2026, 9, 24), 1, date(2026, 9, 28)),
            (date(2026, 9, 30), 1, date(2026, 10, 8)),
            (date(2026, 9, 30), 2, date(2026, 10, 9)),
            (date(2026, 9, 30), 3, date(2026, 10, 10)),
            (date(2026, 9, 30), 4, date(2026, 10, 12)),
            (date(2026, 9, 30), 20, date(2026, 11, 3)),
            # Across the 2025/2026 year end: New Year 01-01..03, make-up Sunday 01-04.
            (date(2025, 12, 31), 1, date(2026, 1, 4)),
            # Labour Day 05-01..05, make-up Saturday 05-09.
            (date(2026, 4, 30), 1, date(2026, 5, 6)),
            (date(2026, 5, 8), 1, date(2026, 5, 9)),
        ],
    )
    def test_official_schedule(self, start: date, days: int, due: date) -> None:
        """Due dates on published years honour holidays and make-up workdays, not estimated."""
        assert add_working_days(start, days) == DueDate(date=due, estimated=False)

    def test_matches_library_workday_list(self) -> None:
        """For every start day in 2026, the result is the library's n-th workday after it."""
        workdays = chinese_calendar.get_workdays(date(2026, 1, 1), date(2026, 12, 31))
        start = date(2025, 12, 31)
        while start < date(2026, 12, 31):
            later = [d for d in workdays if d > start]
            for days in (n for n in (1, 2, 3, 5, 10, 20) if n <= len(later)):
                assert add_working_days(start, days) == DueDate(later[days - 1], False)
            start += timedelta(days=1)

    @pytest.mark.parametrize(
        ("start", "days", "due"),
        [
            # 2027-01-01 (Fri) is in fact New Year's Day, which the fallback cannot know.
            (date(2026, 12, 30), 3, date(2027, 1, 4)),
            (date(2026, 12, 31), 1, date(2027, 1, 1)),
            (date(2027, 3, 5), 1, date(2027, 3, 8)),
            (date(2003, 12, 30), 1, date(2003, 12, 31)),
        ],
    )
    def test_unpublished_year_is_estimated(self, start: date, days: int, due: date) -> None:
        """Any counted day in a year without data falls back to Mon-Fri and flags estimated."""
        assert add_working_days(start, days) == DueDate(date=due, estimated=True)

    def test_stops_before_unpublished_year(self) -> None:
        """A due date reached before the data runs out is not estimated."""
        assert add_working_days(date(2026, 12, 28), 3) == DueDate(date(2026, 12, 31), False)

    def test_start_day_in_unpublished_year_is_not_examined(self) -> None:
        """Only days after start are examined, so an undated start alone does not estimate."""
        assert add_working_days(date(2003, 12, 31), 1) == DueDate(date(2004, 1, 2), False)

    @pytest.mark.parametrize("days", [0, -1, -20])
    def test_rejects_non_positive_days(self, days: int) -> None:
        """A limit of zero or fewer working days is refused."""
        with pytest.raises(ValueError):
            add_working_days(date(2026, 3, 2), days)

    def test_due_date_is_frozen(self) -> None:
        """DueDate is immutable so callers cannot silently shift a deadline."""
        due = add_working_days(date(2026, 3, 2), 1)
        with pytest.raises(dataclasses.FrozenInstanceError):
            due.estimated = True  # type: ignore[misc]
