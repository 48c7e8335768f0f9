"""The warehouse assets in Dagster: a week of real flights goes from the lake into typed tables,
with every row accounted for and the checks' numbers on the materializations."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from ml_platform.defs import keys
from ml_platform.defs.lake.reference import raw_reference_tables
from ml_platform.defs.warehouse.assets import dim_airports, dim_carriers, dim_planes
from ml_platform.devdata.reference_data import flights_csv_for_day
from ml_platform.io.store import open_store
from ml_platform.io.warehouse import connect_warehouse
from ml_platform.ops.bootstrap import replay, seed
from ml_platform.pipeline.warehouse import common
from ml_platform_tests.helpers import platform_defs, run_days


@pytest.fixture
def loaded_week(settings):
    """Seeded, a week landed in the lake, reference tables and dimensions loaded."""
    import datetime as dt

    with dg.instance_for_test() as instance:
        seed(settings)
        replay(settings, dt.date(2013, 1, 1), 7)
        assert run_days(instance, "ingest_landing", "2013-01-01", "2013-01-07").success
        resources = platform_defs().resources
        assert dg.materialize(
            [*raw_reference_tables, dim_carriers, dim_airports, dim_planes], instance=instance, resources=resources
        ).success
        yield instance


def _check(instance, asset: str, name: str):
    key = dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), name)
    return instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]


def test_a_week_loads_in_one_run_with_every_row_accounted_for(settings, loaded_week, monkeypatch):
    instance = loaded_week
    monkeypatch.setattr(common, "MAX_ROWS_PER_PART", 2_000)  # checked in parts of about two days
    result = run_days(instance, "load_warehouse", "2013-01-01", "2013-01-07")
    assert result.success
    assert len(instance.get_runs(filters=dg.RunsFilter(job_name="load_warehouse"))) == 1

    with connect_warehouse(settings.warehouse, read_only=True) as conn:
        (staged,) = conn.execute("SELECT count(*) FROM staging.flights WHERE flight_date = '2013-01-01'").fetchone()
        (fact,) = conn.execute("SELECT count(*) FROM core.fct_flights WHERE flight_date = '2013-01-01'").fetchone()
        (weather,) = conn.execute("SELECT count(DISTINCT origin) FROM staging.weather").fetchone()
    assert staged == fact == 842 and weather == 3

    mat = instance.get_latest_materialization_event(keys.STAGING_FLIGHTS).asset_materialization
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["input_rows"] == meta["loaded_rows"] + meta["quarantined_rows"]
    # Each day's partition carries that day's counts, not the week's.
    for asset in (keys.STAGING_FLIGHTS, keys.FCT_FLIGHTS):
        jan1 = (
            instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset, asset_partitions=["2013-01-01"]), limit=1
            )
            .records[0]
            .asset_materialization.metadata
        )
        assert (jan1["dagster/row_count"].value, jan1["loaded_rows"].value) == (842, 842), asset
    for asset, check in [
        ("warehouse/staging_flights", "contract"),
        ("warehouse/staging_flights", "every_row_accounted_for"),
        ("warehouse/fct_flights", "contract"),
        ("warehouse/staging_weather", "contract"),
    ]:
        record = _check(instance, asset, check)
        assert record.status.value == "SUCCEEDED", (asset, check)
    for asset in ("warehouse/staging_flights", "warehouse/fct_flights"):  # every part of the week was checked
        assert _check(instance, asset, "contract").evaluation.metadata["rows_checked"].value == 6_099, asset


def test_a_new_lake_day_triggers_only_its_own_warehouse_day(settings, loaded_week):
    """Replayed 2013 days fire (not only the latest time window), once, and only that day."""
    instance, defs = loaded_week, platform_defs()
    staging = keys.STAGING_FLIGHTS
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    cursor = result.cursor  # the first tick primes the cursor
    replay(settings, dt.date(2013, 1, 8), 1)
    assert run_days(instance, "ingest_landing", "2013-01-08").success

    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert result.get_requested_partitions(staging) == {"2013-01-08"}
    assert result.get_requested_partitions(keys.STAGING_WEATHER) == {"2013-01-08"}
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.total_requested == 0  # nothing twice


def test_a_day_whose_rows_all_fail_stops_loudly_and_blocks_downstream(settings, loaded_week):
    """Every flight of the day names an unknown airline: all rows go to quarantine, the blocking
    check fails naming the rule and the count, and core.fct_flights is not built on it."""
    instance = loaded_week
    landing = open_store(settings.landing_url)
    day = flights_csv_for_day(dt.date(2013, 1, 8)).decode()
    lines = day.splitlines()
    header = lines[0].split(",")
    carrier = header.index("carrier")
    bad = [",".join(f if i != carrier else "ZZ" for i, f in enumerate(line.split(","))) for line in lines[1:]]
    landing.write_bytes("flights_2013-01-08.csv", ("\n".join([lines[0], *bad]) + "\n").encode())
    assert run_days(instance, "ingest_landing", "2013-01-08").success

    result = run_days(instance, "load_warehouse", "2013-01-08")
    assert not result.success
    record = _check(instance, "warehouse/staging_flights", "every_row_accounted_for")
    evaluation = record.event.dagster_event.event_specific_data
    assert not evaluation.passed
    assert evaluation.description == (f"every row quarantined on 2013-01-08 (rules: {{'unknown_carrier': {len(bad)}}})")
    with connect_warehouse(settings.warehouse, read_only=True) as conn:
        (quarantined,) = conn.execute(
            "SELECT count(*) FROM quarantine.flights WHERE flight_date = '2013-01-08' AND rule = 'unknown_carrier'"
        ).fetchone()
    assert quarantined == len(bad) == 899
    assert keys.FCT_FLIGHTS not in {e.asset_key for e in result.get_asset_materialization_events()}
