"""The platform's one time axis: New York days, from the first day of the reference data."""

from __future__ import annotations

import datetime as dt

# Partitions, weather days and a flight's local times are all New York time.
NEW_YORK = "America/New_York"
FIRST_DAY = dt.date(2013, 1, 1)


def check_range(first: dt.date, last: dt.date) -> None:
    """TypeError unless both are dates (not datetimes), ValueError when ``first`` is after ``last``."""
    for value in (first, last):
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            raise TypeError(f"ranges of days are datetime.date values, got {value!r}")
    if first > last:
        raise ValueError(f"empty range: first {first} is after last {last}")


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every day of [first, last], both included."""
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
