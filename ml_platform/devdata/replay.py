"""Replaying history: the real flights of past days delivered to the landing zone, a file per day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from ml_platform.devdata.reference_data import flights_csv_for_day
from ml_platform.io.store import Store


def landing_name(day: dt.date) -> str:
    return f"flights_{day.isoformat()}.csv"


def replay_days(store: Store, start: dt.date, days: int) -> Iterator[tuple[dt.date, str]]:
    """Land each day's flights CSV; yield (day, what happened) as each one is done.

    A file already landed with the same bytes is left alone, so replaying twice
    delivers nothing new and starts no ingestion.
    """
    if days < 1:
        raise ValueError(f"--days must be at least 1, got {days}")
    existing = {f.name: f.size for f in store.list("", recursive=False)}
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        data = flights_csv_for_day(day)
        if data is None:
            yield day, "no flights in the reference data"
            continue
        name = landing_name(day)
        if existing.get(name) == len(data) and store.read_bytes(name) == data:
            yield day, "already landed"
            continue
        store.write_bytes(name, data)
        yield day, f"landed {name}"
