"""The landing sensor on real files: every file version is ingested exactly once, bad files are
set aside with a reason, contiguous days go into one range run, on a folder and on S3 alike."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest

from ml_platform.defs.lake.landing_sensor import landing_sensor
from ml_platform.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from ml_platform.defs.resources import LandingZoneResource
from ml_platform.devdata.reference_data import flights_csv_for_day
from ml_platform.io.store import open_store
from ml_platform.ops.bootstrap import replay
from ml_platform.pipeline import lake
from ml_platform_tests.helpers import run_days

JAN1 = dt.date(2013, 1, 1)


class Ticks:
    """Calls the sensor like the daemon does: each tick sees the cursor the last one left."""

    def __init__(self, instance: dg.DagsterInstance, landing_url: str):
        self.instance, self.landing_url, self.cursor = instance, landing_url, None

    def __call__(self) -> list[dg.RunRequest]:
        context = dg.build_sensor_context(
            cursor=self.cursor,
            instance=self.instance,
            resources={"landing": LandingZoneResource(url=self.landing_url, settle_seconds=0)},
        )
        result = landing_sensor(context)
        self.cursor = result.cursor
        return result.run_requests or []


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def tick(settings, instance):
    return Ticks(instance, settings.landing_url)


def test_new_same_and_changed_file(settings, tick):
    landing = open_store(settings.landing_url)
    replay(settings, JAN1, 1)

    (first,) = tick()
    assert first.partition_key == "2013-01-01"
    assert tick() == []  # the same file again: nothing to do

    original = landing.read_bytes("flights_2013-01-01.csv")
    landing.write_bytes("flights_2013-01-01.csv", original + original.splitlines(keepends=True)[1])
    (again,) = tick()  # a re-delivery with different content is ingested again
    assert again.partition_key == "2013-01-01" and again.run_key != first.run_key
    assert tick() == []


def test_a_week_in_one_tick_is_one_range_run(settings, tick, instance):
    replay(settings, JAN1, 7)
    (request,) = tick()
    assert request.partition_key is None
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == ("2013-01-01", "2013-01-07")

    result = run_days(instance, "ingest_landing", "2013-01-01", "2013-01-07")
    assert result.success
    store = open_store(settings.lake_url)
    counts = {d: lake.read_partition(store, "flights", JAN1 + dt.timedelta(d)).height for d in range(7)}
    assert counts[0] == 842 and sum(counts.values()) == sum(
        len(flights_csv_for_day(JAN1 + dt.timedelta(d)).splitlines()) - 1 for d in range(7)
    )
    runs = instance.get_runs()
    assert len(runs) == 1  # one run, not seven


def test_gaps_split_ranges(settings, tick):
    replay(settings, JAN1, 2)
    replay(settings, dt.date(2013, 1, 5), 1)
    requests = tick()
    ranges = sorted(
        (r.partition_key or r.tags[RANGE_START_TAG], r.partition_key or r.tags[RANGE_END_TAG]) for r in requests
    )
    assert ranges == [("2013-01-01", "2013-01-02"), ("2013-01-05", "2013-01-05")]


@pytest.mark.parametrize(
    "name, problem",
    [
        ("flights_2013-02-30.csv", "not a calendar date"),
        ("flights_1999-01-01.csv", "not a partition"),
        ("weather_2013-01-01.csv", "name is not of the form"),
    ],
)
def test_badly_named_files_are_set_aside_by_the_sensor(settings, tick, name, problem):
    landing = open_store(settings.landing_url)
    landing.write_bytes(name, flights_csv_for_day(JAN1))
    replay(settings, JAN1, 1)

    requests = tick()
    assert [r.partition_key for r in requests] == ["2013-01-01"]  # the good file still flows
    assert not landing.exists(name)
    assert landing.read_bytes(f"_rejected/{name}") == flights_csv_for_day(JAN1)  # nothing lost
    assert problem in landing.read_bytes(f"_rejected/{name}.error.txt").decode()
    assert tick() == []


def test_a_file_with_bad_content_fails_only_its_own_day(settings, tick, instance):
    landing = open_store(settings.landing_url)
    replay(settings, JAN1, 2)
    landing.write_bytes("flights_2013-01-03.csv", b"")  # an empty delivery

    requests = tick()
    by_range = {r.partition_key or r.tags[RANGE_START_TAG]: r for r in requests}
    assert set(by_range) == {"2013-01-01", "2013-01-03"}

    bad = run_days(instance, "ingest_landing", "2013-01-03")
    assert not bad.success
    failure = next(e for e in bad.all_events if e.event_type_value == "STEP_FAILURE")
    assert "flights_2013-01-03.csv: file is empty" in failure.event_specific_data.error_display_string
    assert landing.read_bytes("_rejected/flights_2013-01-03.csv.error.txt").decode().strip() == (
        "flights_2013-01-03.csv: file is empty"
    )
    assert run_days(instance, "ingest_landing", "2013-01-01", "2013-01-02").success
    assert tick() == []  # the sensor goes on; the rejected file is not retried


def test_s3_landing_zone_and_lake(settings, s3_env, monkeypatch, instance):
    """The same flow against a real S3 HTTP endpoint (moto's server on 127.0.0.1)."""
    monkeypatch.setenv("ML_PLATFORM_LANDING_URL", f"s3://{s3_env}/landing")
    monkeypatch.setenv("ML_PLATFORM_LAKE_URL", f"s3://{s3_env}/lake")
    from ml_platform.settings import Settings

    s3 = Settings.from_env()
    replay(s3, JAN1, 3)
    tick = Ticks(instance, s3.landing_url)
    (request,) = tick()
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == ("2013-01-01", "2013-01-03")
    assert tick() == []
    cursor = json.loads(tick.cursor)
    assert set(cursor) == {f"flights_2013-01-0{d}.csv" for d in (1, 2, 3)}

    assert run_days(instance, "ingest_landing", "2013-01-01", "2013-01-03").success
    lake_store = open_store(s3.lake_url)
    assert lake.read_partition(lake_store, "flights", JAN1).height == 842
    assert lake.read_partition(lake_store, "weather", JAN1).height == 67

    # DuckDB reads the Hive-partitioned lake straight from S3, offline (httpfs LOADed by path from its
    # PyPI wheel, never installed into ~/.duckdb; the S3 secret from the AWS_* variables).
    import duckdb

    from ml_platform.io.warehouse import configure_lake_access

    con = duckdb.connect()
    configure_lake_access(con, s3.lake_url)
    rows = con.execute(
        f"SELECT date, count(*) FROM read_parquet('s3://{s3_env}/lake/raw/flights/*/*.parquet', "
        "hive_partitioning = true) GROUP BY date ORDER BY date"
    ).fetchall()
    assert [(str(d), n) for d, n in rows][0] == ("2013-01-01", 842) and len(rows) == 3
