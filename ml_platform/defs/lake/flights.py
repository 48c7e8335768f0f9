"""Landed flights files into the lake: archived as delivered, then one Parquet partition per day."""

import datetime as dt
from collections import defaultdict

import dagster as dg
import polars as pl

from ml_platform.defs.keys import LANDING_FLIGHTS, RAW_FLIGHT_EVENTS, RAW_FLIGHTS
from ml_platform.defs.metadata import add_daily_metadata, add_table_schema
from ml_platform.defs.partitions import daily_partitions
from ml_platform.defs.resources import LandingZoneResource, StoreResource
from ml_platform.io.store import StoredFile, sha256
from ml_platform.pipeline import lake
from ml_platform.pipeline.landing import (
    RejectedFile,
    landing_date,
    landing_files,
    name_problem,
    parse_flights_csv,
    reject,
)
from ml_platform.stream import day_events, offset_log

landing_flights = dg.AssetSpec(
    LANDING_FLIGHTS,
    group_name="sources",
    kinds={"csv"},
    owners=["team:data-platform"],
    description="Daily flights CSV files as the airline delivers them to the landing zone "
    "(flights_YYYY-MM-DD.csv). Outside the platform: the landing sensor watches it.",
)


def _files_by_day(files: list[StoredFile]) -> dict[dt.date, list[StoredFile]]:
    by_day: dict[dt.date, list[StoredFile]] = defaultdict(list)
    for f in files:
        if name_problem(f) is None:  # the others are the landing sensor's to reject
            by_day[landing_date(f.name)].append(f)
    return by_day


def _streamed_by_day(lake_zone, days: list[dt.date]) -> dict[dt.date, pl.DataFrame]:
    """The raw flights rows the stream delivered for ``days`` (empty when nothing was streamed)."""
    batches = [b for files in offset_log.lake_batches(lake_zone).values() for b in files]
    if not batches:
        return {}
    events = day_events.read_batches(lake_zone, batches).filter(pl.col("flight_date").is_in(days))
    events = events.sort("_partition", "_offset").unique("event_id", keep="first", maintain_order=True)
    return {day: day_events.raw_flight_rows(rows) for (day,), rows in events.group_by("flight_date")}


@dg.asset(
    key=RAW_FLIGHTS,
    deps=[landing_flights, RAW_FLIGHT_EVENTS],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="lake",
    kinds={"parquet", "polars"},
    owners=["team:data-platform"],
)
def raw_flights(
    context: dg.AssetExecutionContext, landing: LandingZoneResource, lake_store: StoreResource
) -> dg.MaterializeResult:
    """Every flight the airline reported for the day, exactly as delivered (values kept as text),
    with the file and line each row came from: the day's landing files, and the day's flights
    from the event stream once complete (topic partition and offset as file and line). Typing and
    cleaning happen in the warehouse."""
    landing_zone, lake_zone = landing.store(), lake_store.store()
    days = [dt.date.fromisoformat(k) for k in context.partition_keys]
    by_day = _files_by_day(landing_files(landing_zone))
    streamed = _streamed_by_day(lake_zone, days)
    per_day, rejected, missing = {}, [], []
    frames = []
    for day in days:
        day_frames, sources = [], []
        for f in by_day.get(day, []):
            data = landing_zone.read_bytes(f.path)
            try:
                frame = parse_flights_csv(f.name, data)
            except RejectedFile as e:
                moved = reject(landing_zone, f, e)
                context.log.error("Rejected %s: %s (moved to %s)", f.name, e, moved)
                rejected.append(str(e))
                continue
            digest = sha256(data)  # hashed once, here, in the run
            lake.archive(lake_zone, "flights", day, f.name, digest, data)
            sources.append({"file": f.name, "sha256": digest, "bytes": len(data), "rows": frame.height})
            day_frames.append(frame)
        if day in streamed:
            rows = streamed[day]
            sources.append({"stream": rows["_source_file"][0].split("/")[0], "rows": rows.height})
            day_frames.append(rows)
        if not day_frames:
            missing.append(day.isoformat())
            continue
        frame = pl.concat(day_frames, how="diagonal_relaxed")
        lake.write_partition(lake_zone, "flights", day, frame)
        per_day[day] = {
            "dagster/row_count": frame.height,
            "source_files": dg.MetadataValue.json(sources),
            "lake_location": lake_zone.uri(f"raw/flights/date={day}"),
        }
        frames.append(frame.head(0))

    if missing:
        problems = "; ".join(rejected) or f"no landing file in {landing_zone.url} and no streamed events"
        raise dg.Failure(
            description=f"No ingestible flights file for {', '.join(missing)}: {problems}. "
            "Rejected files are in the landing zone's _rejected/ folder with an .error.txt.",
            metadata={"rejected_files": rejected, "days_without_data": missing},
        )
    add_daily_metadata(context, per_day)  # each day's own counts and files; one log line for the run
    context.log.info("%d day(s), %d flights", len(per_day), sum(m["dagster/row_count"] for m in per_day.values()))
    add_table_schema(context, max(per_day), pl.concat(frames, how="diagonal_relaxed"))
    return dg.MaterializeResult(metadata={"rejected_files": rejected})
