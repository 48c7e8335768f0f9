"""Watches the landing zone and turns each new or changed file version into one ingestion.

The cursor remembers the version (content hash, or ETag on S3) of every file
seen; each run request carries a run key made of the file versions it covers,
so a file version is ingested once even if the cursor were lost. Contiguous new
days found in one tick go into one range run. A file whose name is not a valid
day is rejected here (no run can hold it); a file with bad content gets a run
of its own, which rejects it and fails visibly on that day's partition only.
"""

import datetime as dt
import hashlib
import json
import time

import dagster as dg

from ml_platform.defs.lake.flights import raw_flights
from ml_platform.defs.lake.weather import raw_weather
from ml_platform.defs.partitions import RANGE_END_TAG, RANGE_START_TAG, daily_partitions
from ml_platform.defs.resources import LandingZoneResource
from ml_platform.io.store import StoredFile
from ml_platform.pipeline.landing import (
    RejectedFile,
    contiguous_ranges,
    landing_date,
    landing_files,
    name_problem,
    parse_flights_csv,
    reject,
)

ingest_landing_job = dg.define_asset_job(
    "ingest_landing",
    selection=[raw_flights, raw_weather],
    description="Lands days of flights in the lake and fetches the same days' weather.",
)


def _run_request(first: dt.date, last: dt.date, files: list[StoredFile]) -> dg.RunRequest:
    versions = sorted(f"{f.name}@{f.version}" for f in files)
    run_key = f"{first}..{last}:" + hashlib.sha256("\n".join(versions).encode()).hexdigest()[:20]
    tags = {"ml_platform/landing_files": ",".join(sorted(f.name for f in files))[:1000]}
    if first == last:
        return dg.RunRequest(run_key=run_key, partition_key=first.isoformat(), tags=tags)
    return dg.RunRequest(
        run_key=run_key,
        tags={
            **tags,
            RANGE_START_TAG: first.isoformat(),
            RANGE_END_TAG: last.isoformat(),
        },
    )


@dg.sensor(
    job=ingest_landing_job,
    minimum_interval_seconds=5,  # a tick lists the zone (a stat per file) and reads new files only
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZoneResource) -> dg.SensorResult:
    """Ingests every new or changed flights file in the landing zone, several days per run; every
    other file is moved to _rejected/ with its reason, once."""
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    store = landing.store()
    present = landing_files(store)
    cursor = {f.name: seen[f.name] for f in present if f.name in seen}
    good: list[tuple[dt.date, StoredFile]] = []
    requests: list[dg.RunRequest] = []
    waiting = []
    now = time.time()
    for f in present:
        if seen.get(f.name) == f.version:
            continue
        if not f.is_link and now - f.modified < landing.settle_seconds:
            waiting.append(f.name)  # maybe still being written: looked at again next tick
            continue
        problem = name_problem(f)
        if problem is None:
            day = landing_date(f.name)
            if not daily_partitions.has_partition_key(day.isoformat()):
                problem = RejectedFile(f.name, f"{day} is not a partition (days run from 2013-01-01 to today)")
        if problem is not None:
            try:
                moved = reject(store, f, problem)
                context.log.warning("Rejected %r: %s (moved to %s)", f.name, problem, moved)
            except Exception as err:  # leave it for the next tick, never fail the tick
                context.log.error("Could not move %r to _rejected/, will try again: %s", f.name, err)
            continue
        try:
            parse_flights_csv(f.name, store.read_bytes(f.path))
            good.append((day, f))
        except RejectedFile as e:
            context.log.warning("%s will be rejected by its ingestion run: %s", f.name, e)
            requests.append(_run_request(day, day, [f]))
        except Exception as err:
            context.log.error("Could not read %s, will try again: %s", f.name, err)
            continue
        cursor[f.name] = f.version
    if waiting:
        context.log.info("Waiting for %s to stay unchanged for %ss", ", ".join(waiting), landing.settle_seconds)

    for first, last in contiguous_ranges([d for d, _ in good]):
        requests.append(_run_request(first, last, [f for d, f in good if first <= d <= last]))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))
