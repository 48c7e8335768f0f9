"""US federal holidays, from the rules of 5 U.S.C. 6103 (no extra dependency).

A holiday here is the day federal offices close: fixed-date holidays falling on a
Saturday are observed on the Friday before, on a Sunday on the Monday after (so
New Year's Day 2012, a Sunday, is 2012-01-02, and Veterans Day 2012 is 2012-11-12).
Juneteenth counts from 2021, the year it became a federal holiday.

The 2012-2014 dates this gives (the ones the 2013 flights are near) are the ones the
Office of Personnel Management published; the tests check them one by one.
"""

from __future__ import annotations

import datetime as dt


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The n-th (1-based; -1 = last) ``weekday`` (Monday=0) of a month."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: dt.date) -> dt.date:
    """The weekday a fixed-date holiday is observed on."""
    shift = {5: -1, 6: 1}.get(day.weekday(), 0)
    return day + dt.timedelta(days=shift)


def federal_holidays(year: int) -> dict[dt.date, str]:
    """``{observed date: name}`` of the federal holidays of ``year``, in date order."""
    monday, thursday = 0, 3
    days = {
        "New Year's Day": _observed(dt.date(year, 1, 1)),
        "Birthday of Martin Luther King, Jr.": _nth_weekday(year, 1, monday, 3),
        "Washington's Birthday": _nth_weekday(year, 2, monday, 3),
        "Memorial Day": _nth_weekday(year, 5, monday, -1),
        "Independence Day": _observed(dt.date(year, 7, 4)),
        "Labor Day": _nth_weekday(year, 9, monday, 1),
        "Columbus Day": _nth_weekday(year, 10, monday, 2),
        "Veterans Day": _observed(dt.date(year, 11, 11)),
        "Thanksgiving Day": _nth_weekday(year, 11, thursday, 4),
        "Christmas Day": _observed(dt.date(year, 12, 25)),
    }
    if year >= 2021:
        days["Juneteenth National Independence Day"] = _observed(dt.date(year, 6, 19))
    return {day: name for name, day in sorted(days.items(), key=lambda item: item[1])}


def holidays_around(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every federal holiday from the year before ``first`` to the year after ``last``.

    Enough to find the nearest holiday of any day in [first, last]: no day is more
    than a few weeks from one, and the neighbouring years cover the turn of the year.
    """
    return sorted(day for year in range(first.year - 1, last.year + 2) for day in federal_holidays(year))
