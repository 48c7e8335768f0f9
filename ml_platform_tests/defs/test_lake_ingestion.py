"""The lake layer on real 2013 flights: landed files become exact, replaceable Parquet partitions."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from ml_platform.defs import keys
from ml_platform.devdata.reference_data import flights_csv_for_day
from ml_platform.io.store import open_store
from ml_platform.ops.bootstrap import replay
from ml_platform.pipeline import lake
from ml_platform_tests.helpers import run_days

JAN1 = dt.date(2013, 1, 1)
BLIZZARD = dt.date(2013, 2, 8)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_a_day_lands_with_its_842_flights(settings, instance):
    replay(settings, JAN1, 1)
    result = run_days(instance, "ingest_landing", "2013-01-01")
    assert result.success

    flights = lake.read_partition(open_store(settings.lake_url), "flights", JAN1)
    assert flights.height == 842
    first = flights.row(0, named=True)
    # The first line of the source: UA 1545 from EWR to IAH, left at 5:17, arrived 11 minutes late.
    assert (first["carrier"], first["flight"], first["origin"], first["dest"]) == ("UA", "1545", "EWR", "IAH")
    assert (first["dep_time"], first["arr_delay"], first["_source_line"]) == ("517", "11", 2)
    assert flights["_source_file"].unique().to_list() == ["flights_2013-01-01.csv"]

    weather = lake.read_partition(open_store(settings.lake_url), "weather", JAN1)
    assert weather.height == 67  # 3 airports x 24 hours, 5 hours missing in the source
    assert sorted(weather["origin"].unique()) == ["EWR", "JFK", "LGA"]

    mat = instance.get_latest_materialization_event(keys.RAW_FLIGHTS).asset_materialization
    assert mat.partition == "2013-01-01"
    assert mat.metadata["dagster/row_count"].value == 842
    columns = [c.name for c in mat.metadata["dagster/column_schema"].schema.columns]
    assert columns[:3] == ["year", "month", "day"] and "_source_line" in columns
    (source,) = mat.metadata["source_files"].value
    assert source["rows"] == 842 and source["bytes"] == len(flights_csv_for_day(JAN1))


def test_a_range_run_gives_each_day_its_own_rows_and_files(settings, instance):
    replay(settings, JAN1, 3)
    assert run_days(instance, "ingest_landing", "2013-01-01", "2013-01-03").success
    records = instance.fetch_materializations(keys.RAW_FLIGHTS, limit=10).records
    by_day = {r.partition_key: r.asset_materialization.metadata for r in records}
    assert {day: m["dagster/row_count"].value for day, m in by_day.items()} == {
        "2013-01-01": 842,
        "2013-01-02": 943,
        "2013-01-03": 914,
    }
    assert [m["source_files"].value[0]["file"] for _, m in sorted(by_day.items())] == [
        "flights_2013-01-01.csv",
        "flights_2013-01-02.csv",
        "flights_2013-01-03.csv",
    ]
    assert by_day["2013-01-02"]["lake_location"].value.endswith("raw/flights/date=2013-01-02")
    weather = instance.fetch_materializations(keys.RAW_WEATHER, limit=10).records
    assert {r.partition_key: r.asset_materialization.metadata["dagster/row_count"].value for r in weather} == {
        "2013-01-01": 67,
        "2013-01-02": 72,
        "2013-01-03": 72,
    }
    # The columns once, on the newest day, which is the asset's latest materialization.
    assert [day for day, m in sorted(by_day.items()) if "dagster/column_schema" in m] == ["2013-01-03"]
    latest = instance.get_latest_materialization_event(keys.RAW_FLIGHTS).asset_materialization
    assert latest.partition == "2013-01-03" and "dagster/column_schema" in latest.metadata


def test_the_blizzard_day_keeps_every_cancelled_flight(settings, instance):
    replay(settings, BLIZZARD, 1)
    assert run_days(instance, "ingest_landing", "2013-02-08").success
    flights = lake.read_partition(open_store(settings.lake_url), "flights", BLIZZARD)
    assert flights.height == 930
    cancelled = flights.filter(pl.col("dep_time").is_null()).height
    assert cancelled == 472  # about half the schedule never left


def test_ingesting_a_day_twice_gives_the_same_lake(settings, instance):
    replay(settings, JAN1, 1)
    store = open_store(settings.lake_url)
    assert run_days(instance, "ingest_landing", "2013-01-01").success
    before = {f.path: store.read_bytes(f.path) for f in store.list("raw/flights")}
    first = lake.read_partition(store, "flights", JAN1)
    assert run_days(instance, "ingest_landing", "2013-01-01").success
    assert {f.path: store.read_bytes(f.path) for f in store.list("raw/flights")} == before  # same files, same bytes
    assert lake.read_partition(store, "flights", JAN1).equals(first)
    assert len(store.list("archive/flights")) == 1  # the landed version is archived once


def test_an_unreachable_weather_api_fails_the_run_clearly(settings, instance, monkeypatch):
    from ml_platform_tests.conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("ML_PLATFORM_WEATHER_API_URL", dead)
    replay(settings, JAN1, 1)
    result = run_days(instance, "ingest_landing", "2013-01-01")
    assert not result.success
    assert result.get_step_success_events()[0].step_key == "lake__raw_flights"  # flights still landed
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error_display_string
    assert f"Weather for 2013-01-01 could not be fetched: weather API {dead}/weather failed after" in message
