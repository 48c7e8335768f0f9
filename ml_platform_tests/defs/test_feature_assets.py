"""The features layer in Dagster on real flights: a week of features with passing point-in-time
and contract checks, published to the lake; a training snapshot named by its content; drift
measured against it; and a corrected day re-triggering the later days that depend on it."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from ml_platform.defs import keys
from ml_platform.defs.features.assets import flight_training_set
from ml_platform.defs.lake.reference import raw_reference_tables
from ml_platform.defs.warehouse.assets import dim_airports, dim_carriers, dim_planes
from ml_platform.io.store import open_store
from ml_platform.ops.bootstrap import replay, seed
from ml_platform.pipeline import lake
from ml_platform.pipeline.warehouse import common
from ml_platform_tests.helpers import platform_defs, run_days

FIRST, LAST = "2013-01-01", "2013-01-10"


@pytest.fixture
def featured(settings, monkeypatch):
    """Ten real days landed, loaded into the warehouse and turned into features, in range runs
    that read their rows back in parts of about two days (as a range of millions of rows would)."""
    monkeypatch.setattr(common, "MAX_ROWS_PER_PART", 2_000)
    with dg.instance_for_test() as instance:
        seed(settings)
        replay(settings, dt.date(2013, 1, 1), 10)
        resources = platform_defs().resources
        assert run_days(instance, "ingest_landing", FIRST, LAST).success
        assert dg.materialize(
            [*raw_reference_tables, dim_carriers, dim_airports, dim_planes], instance=instance, resources=resources
        ).success
        assert run_days(instance, "load_warehouse", FIRST, LAST).success
        assert run_days(instance, "build_features", FIRST, LAST).success
        yield instance


def _check(instance, asset, name):
    key = dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), name)
    return instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]


def test_features_pass_their_checks_and_are_published(settings, featured):
    for name in ("point_in_time", "contract"):
        assert _check(featured, "features/flight_features", name).status.value == "SUCCEEDED", name
    store = open_store(settings.lake_url)
    days = [dt.date(2013, 1, d) for d in range(1, 11)]
    published = {d: lake.read_partition(store, "flight_features", d, zone="published").height for d in days}
    assert published[dt.date(2013, 1, 1)] == 842 and sum(published.values()) == 8_832
    checked = _check(featured, "features/flight_features", "contract").evaluation.metadata["rows_checked"].value
    assert checked == 8_832  # every part of the range was checked
    published = lake.read_partition(store, "flight_features", dt.date(2013, 1, 1), zone="published")
    horizon = pl.col("sched_dep_utc") - pl.duration(minutes=60)
    assert published.select((pl.col("predicted_at") == horizon).all()).item()
    jan1 = (
        featured.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=keys.FEATURES, asset_partitions=[FIRST]), limit=1
        )
        .records[0]
        .asset_materialization.metadata
    )
    assert jan1["dagster/row_count"].value == 842  # the day's own rows, not the range's
    assert jan1["published"].value.endswith("published/flight_features/date=2013-01-01")


def test_training_snapshot_is_named_by_its_content_and_drift_compares_with_it(settings, featured):
    resources = platform_defs().resources
    config = dg.RunConfig({"features__training_set": {"config": {"last_day": "2013-01-07"}}})
    first = dg.materialize([flight_training_set], instance=featured, resources=resources, run_config=config)
    again = dg.materialize([flight_training_set], instance=featured, resources=resources, run_config=config)
    version = first.get_asset_materialization_events()[0].materialization.tags["dagster/data_version"]
    # Same rows, no model trained on them yet: the same snapshot and data version again (once a
    # model is trained on them, nothing is materialized: test_model_assets.py).
    [repeated] = again.get_asset_materialization_events()
    assert again.success and repeated.materialization.tags["dagster/data_version"] == version
    store = open_store(settings.lake_url)
    (snapshot,) = [f for f in store.list("training_sets") if f.path.endswith(".parquet")]
    assert version[:16] in snapshot.path

    assert run_days(featured, "build_features", "2013-01-10").success
    drift = _check(featured, "features/flight_features", "feature_drift")
    metadata = drift.event.dagster_event.event_specific_data.metadata
    assert metadata["reference"].value.endswith(snapshot.path)
    assert 0 <= metadata["score"].value < 5


def test_a_corrected_day_retriggers_the_later_days_that_depend_on_it(settings, featured):
    defs = platform_defs()
    features = keys.FEATURES
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=featured).cursor
    assert run_days(featured, "load_warehouse", "2013-01-05").success  # a re-delivered day reloaded
    result = dg.evaluate_automation_conditions(defs=defs, instance=featured, cursor=cursor)
    requested = result.get_requested_partitions(features)
    # the day itself and every later day whose 29-day history includes it; nothing before it
    assert sorted(requested) == [f"2013-01-{d:02d}" for d in range(5, 11)]
