"""Reading the stream's events back from the lake by New York day, and knowing when a day is complete.

A flight belongs to the day of its scheduled departure (``flight_date``), but its events
come later: its departure up to a day late, its arrival hours after that. So a day's events
are complete only once the stream has moved well past the day's end.

The completeness rule. The *event-time watermark* is the earliest, over the topic's
partitions, of the latest event time in each partition's newest batch file that holds events
(events are produced in event-time order, and each partition is read in order, so every
event older than the watermark has been written, except events that arrive late). A day is
complete when the watermark has passed the day's end (midnight in New York) by the *allowed
lateness*, 6 hours by default: in 2013, 99.96 % of flights have their last event within 6
hours of their day's end (the latest, 17.95 h, after a 21-hour delay). An event that comes
after its day was declared complete is still written to the lake; its day then shows up in
``days_in_batches`` for the new files, and the day is processed again, as a re-delivered
landing file would be. A partition with no events yet holds the watermark back (None).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import polars as pl

from ml_platform.io.store import Store
from ml_platform.stream.events import NEW_YORK, TOPIC
from ml_platform.stream.offset_log import LAKE_EVENT_SCHEMA, BatchFile, lake_batches

ALLOWED_LATENESS = dt.timedelta(hours=6)


def day_end(day: dt.date) -> dt.datetime:
    """The instant (UTC) a New York day ends: the next midnight on New York's clock."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), NEW_YORK).astimezone(dt.UTC)


def is_day_complete(
    day: dt.date, watermark: dt.datetime | None, allowed_lateness: dt.timedelta = ALLOWED_LATENESS
) -> bool:
    return watermark is not None and watermark >= day_end(day) + allowed_lateness


def last_complete_day(
    watermark: dt.datetime | None, allowed_lateness: dt.timedelta = ALLOWED_LATENESS
) -> dt.date | None:
    """The latest New York day complete under ``watermark``, or None without a watermark."""
    if watermark is None:
        return None
    return (watermark - allowed_lateness).astimezone(NEW_YORK).date() - dt.timedelta(days=1)


def read_batch(store: Store, batch: BatchFile, columns: list[str] | None = None) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(store.read_bytes(batch.path)), columns=columns)


def event_time_watermark(store: Store, topic: str = TOPIC, partitions: int | None = None) -> dt.datetime | None:
    """The event-time watermark (see the module docstring), or None while a partition has no events.

    ``partitions``: how many the topic has (a partition with no file yet then counts as empty);
    by default the partitions found in the lake. Reads one small file per partition.
    """
    batches = lake_batches(store, topic)
    if not batches or (partitions is not None and len(batches) < partitions):
        return None
    latest = []
    for files in batches.values():
        newest = None
        for batch in reversed(files):  # the newest file with events (a batch may hold only dead letters)
            times = read_batch(store, batch, ["event_time"])["event_time"]
            if times.len():
                newest = times.max()
                break
        if newest is None:
            return None
        latest.append(newest)
    return min(latest)


def read_batches(store: Store, batches: list[BatchFile]) -> pl.DataFrame:
    """The events of some batch files, in one frame (lineage columns included)."""
    frames = [read_batch(store, b) for b in batches]
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=LAKE_EVENT_SCHEMA)


def days_in_batches(store: Store, batches: list[BatchFile]) -> set[dt.date]:
    """The flight days the events of these batch files belong to: what new files change."""
    days: set[dt.date] = set()
    for batch in batches:
        days.update(read_batch(store, batch, ["flight_date"])["flight_date"].unique().to_list())
    return days


def read_day_events(store: Store, day: dt.date, topic: str = TOPIC) -> pl.DataFrame:
    """The events of the flights scheduled on ``day``, one row per event id, in event-time order.

    A re-sent event (same ``event_id``) is kept once, at its first offset. Reads every batch
    file: for a warehouse load, read the new files (``read_batches``) instead.
    """
    frames = []
    for files in lake_batches(store, topic).values():
        for batch in files:
            frame = pl.read_parquet(io.BytesIO(store.read_bytes(batch.path)))
            frames.append(frame.filter(pl.col("flight_date") == day))
    if not frames:
        return pl.DataFrame(schema=LAKE_EVENT_SCHEMA)
    events = pl.concat(frames, how="vertical")
    return (
        events.sort("_partition", "_offset")
        .unique("event_id", keep="first", maintain_order=True)
        .sort("event_time", "flight_key", "_offset")
    )


def raw_flight_rows(events: pl.DataFrame) -> pl.DataFrame:
    """The flights these events describe as the lake's raw flights rows, with lineage like a landing
    file's: ``_source_file`` names the topic partition, ``_source_line`` the offset of the flight's
    latest event, ``_source_lines`` the flights whose latest event that partition holds (counted apart from the rows)."""
    from ml_platform.stream.events import KINDS, raw_flights_from_events

    if events.is_empty():
        return pl.DataFrame()
    rows = raw_flights_from_events(events)
    state = pl.col("kind").replace_strict({k: i for i, k in enumerate(KINDS)}, return_dtype=pl.Int8)
    latest = (
        events.sort("event_time", state, "event_id")
        .unique("flight_key", keep="last")
        .sort("flight_date", "sched_dep_time", "carrier", "flight", "origin")
    )
    digest = hashlib.sha256("\n".join(sorted(events["event_id"].to_list())).encode()).hexdigest()
    # Per partition (a "file"), the flights whose latest event it holds, counted from the events.
    per_partition = latest.group_by("_partition").agg(pl.col("flight_key").n_unique().alias("flights"))
    flights = latest.join(per_partition, on="_partition", how="left", maintain_order="left")["flights"]
    return rows.with_columns(
        (pl.lit(f"{TOPIC}/partition=") + latest["_partition"].cast(pl.String)).alias("_source_file"),
        pl.lit(digest).alias("_source_sha256"),
        latest["_offset"].cast(pl.Int32).alias("_source_line"),
        pl.lit(None, dtype=pl.String).alias("_parse_error"),
        flights.cast(pl.Int32).alias("_source_lines"),
    )
