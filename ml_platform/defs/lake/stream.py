"""Flight events from Kafka: the lake's offset log as an asset, and a sensor that reads only offsets.

The sink service (``ml-platform stream-sink``, started by ``make run``) writes each micro-batch
of ``flight_events`` as one Parquet file named by partition and offset range; the lake is the
source of truth for offsets. This sensor never talks to Kafka (a consuming sensor can hang the
daemon): it lists the lake, reads the event times of the new files only, and once a New York
day's events are complete (``ml_platform.stream.day_events``) it starts one ingestion run over
the completed days, exactly as the landing sensor does for files.
"""

import datetime as dt
import hashlib
import json

import dagster as dg
import polars as pl

from ml_platform.defs.keys import KAFKA_FLIGHT_EVENTS, RAW_FLIGHT_EVENTS, RAW_FLIGHTS, RAW_WEATHER
from ml_platform.defs.metadata import add_daily_metadata
from ml_platform.defs.partitions import RANGE_END_TAG, RANGE_START_TAG, daily_partitions
from ml_platform.defs.resources import StoreResource
from ml_platform.pipeline.landing import contiguous_ranges
from ml_platform.stream import day_events, offset_log
from ml_platform.stream.events import PARTITIONS, TOPIC

kafka_flight_events = dg.AssetSpec(
    KAFKA_FLIGHT_EVENTS,
    group_name="sources",
    kinds={"kafka"},
    owners=["team:data-platform"],
    description=f"The Kafka topic `{TOPIC}` ({PARTITIONS} partitions, keyed by flight): a `departed` event at "
    "each actual departure, `arrived` at each arrival (the label), `cancelled` at the scheduled departure. "
    "Outside the platform: the stream sink copies it into the lake exactly once.",
)


def _offsets_metadata(store) -> dict:
    offsets = offset_log.lake_offsets(store)
    status = offset_log.read_status(store) or {}
    lag = {str(p): s.get("lag") for p, s in (status.get("partitions") or {}).items()}
    return {
        "topic": TOPIC,
        "offsets": dg.MetadataValue.json(
            {
                str(p): {
                    "next_offset": o.next_offset,
                    "files": o.files,
                    "messages": o.messages,
                    "dead_letter_files": o.dead_letter_files,
                }
                for p, o in sorted(offsets.items())
            }
        ),
        "consumer_lag": dg.MetadataValue.json(lag),
        "sink_status_at": status.get("updated_at"),
    }


@dg.asset(
    key=RAW_FLIGHT_EVENTS,
    deps=[kafka_flight_events],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="lake",
    kinds={"parquet", "kafka"},
    owners=["team:data-platform"],
    check_specs=[
        dg.AssetCheckSpec(
            "offsets_contiguous",
            asset=RAW_FLIGHT_EVENTS,
            blocking=True,
            description="The lake's batch files cover each partition's offsets with no gap and no overlap.",
        )
    ],
)
def raw_flight_events(context: dg.AssetExecutionContext, lake_store: StoreResource):
    """The flight events of each New York day as the stream delivered them, one row per event id, with
    the Kafka partition and offset each came from. A day is materialized once its events are complete."""
    store = lake_store.store()
    per_day = {}
    for key in context.partition_keys:
        events = day_events.read_day_events(store, dt.date.fromisoformat(key))
        kinds = dict(events.group_by("kind").len().iter_rows()) if events.height else {}
        ranges = (
            events.group_by("_partition").agg(
                pl.col("_offset").min().alias("first"), pl.col("_offset").max().alias("last")
            )
            if events.height
            else pl.DataFrame()
        )
        per_day[key] = {
            "dagster/row_count": events.height,
            "events_by_kind": dg.MetadataValue.json(kinds),
            "offset_ranges": dg.MetadataValue.json(
                {str(p): [f, la] for p, f, la in ranges.sort("_partition").iter_rows()}
            ),
        }
    add_daily_metadata(context, per_day)
    problems = offset_log.offset_log_problems(store)
    yield dg.MaterializeResult(metadata=_offsets_metadata(store))
    yield dg.AssetCheckResult(
        check_name="offsets_contiguous",
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems) or None,
    )


ingest_stream_job = dg.define_asset_job(
    "ingest_stream",
    selection=[RAW_FLIGHT_EVENTS, RAW_FLIGHTS, RAW_WEATHER],
    description="Lands complete days of streamed flight events in the lake, with the same days' weather.",
)


@dg.sensor(job=ingest_stream_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def stream_sensor(context: dg.SensorEvaluationContext, lake_store: StoreResource) -> dg.SensorResult | dg.SkipReason:
    """Ingests each New York day of streamed events once it is complete (one run for contiguous days)."""
    store = lake_store.store()
    cursor = json.loads(context.cursor) if context.cursor else {"seen": {}, "pending": []}
    batches = offset_log.lake_batches(store)
    seen = {int(p): n for p, n in cursor["seen"].items()}
    new = [b for p, files in batches.items() for b in files if b.first >= seen.get(p, 0)]
    pending = {dt.date.fromisoformat(d) for d in cursor["pending"]} | day_events.days_in_batches(store, new)
    watermark = day_events.event_time_watermark(store, partitions=PARTITIONS)
    ready = sorted(d for d in pending if day_events.is_day_complete(d, watermark))
    ready = [d for d in ready if daily_partitions.has_partition_key(d.isoformat())]
    requests = []
    for first, last in contiguous_ranges(ready):
        offsets = ",".join(f"{p}:{files[-1].last}" for p, files in sorted(batches.items()))
        run_key = f"stream:{first}..{last}:" + hashlib.sha256(offsets.encode()).hexdigest()[:16]
        tags = {"ml_platform/stream_offsets": offsets}
        if first == last:
            requests.append(dg.RunRequest(run_key=run_key, partition_key=first.isoformat(), tags=tags))
        else:
            tags |= {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()}
            requests.append(dg.RunRequest(run_key=run_key, tags=tags))
    next_cursor = {
        "seen": {str(p): files[-1].last + 1 for p, files in batches.items()},
        "pending": sorted(d.isoformat() for d in pending - set(ready)),
    }
    if not requests:
        waiting = (
            f"{len(next_cursor['pending'])} day(s) waiting for their events to complete" if pending else "no new events"
        )
        return dg.SensorResult(skip_reason=f"{waiting} (watermark {watermark})", cursor=json.dumps(next_cursor))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(next_cursor))
