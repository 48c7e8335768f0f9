"""The models layer in Dagster against a real MLflow server: train and register a challenger with
lineage both ways, promote the first model, score only days after its cut-off, keep scored days
as they were when a new champion arrives, measure realized performance, and roll back."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import mlflow
import pandera.polars as pa
import polars as pl
import pytest

from ml_platform.defs import keys
from ml_platform.defs.lake.reference import raw_reference_tables
from ml_platform.defs.models.retraining import RetrainPolicyConfig, retraining_sensor
from ml_platform.defs.warehouse.assets import dim_airports, dim_carriers, dim_planes
from ml_platform.domain import contracts
from ml_platform.io.store import open_store
from ml_platform.io.warehouse import connect_warehouse
from ml_platform.ops.bootstrap import replay, seed
from ml_platform.pipeline import features as ft
from ml_platform.pipeline import promotion
from ml_platform_tests.conftest import free_port
from ml_platform_tests.helpers import platform_defs, run_days
from ml_platform_tests.mlflow_server import mlflow_server  # noqa: F401

pytestmark = pytest.mark.slow

MODEL = keys.MODEL
CHAMPION = keys.CHAMPION
FEATURES = keys.FEATURES
PREDICTIONS = keys.PREDICTIONS


def _retraining(instance) -> dg.RunRequest | dg.SkipReason:
    """One tick of the retraining sensor, as the daemon calls it."""
    context = dg.build_sensor_context(instance=instance, resources={"retrain_policy": RetrainPolicyConfig()})
    return retraining_sensor(context)


def _tick(instance, cursor=None):
    return dg.evaluate_automation_conditions(defs=platform_defs(), instance=instance, cursor=cursor)


def _train(instance, last_day: str):
    job = platform_defs().resolve_job_def("train_and_promote")
    config = {
        "ops": {
            "features__training_set": {"config": {"last_day": last_day}},
            "models__flight_delay_model": {"config": {"holdout_days": 7}},
        }
    }
    result = job.execute_in_process(instance=instance, run_config=config, raise_on_error=False)
    assert result.success
    return {
        key: instance.get_latest_materialization_event(key).asset_materialization.metadata for key in (MODEL, CHAMPION)
    }


@pytest.fixture
def six_weeks(settings, monkeypatch, mlflow_server):  # noqa: F811
    """2013-01-01..02-14 landed, loaded and featurized; MLflow is a real server on loopback."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    with dg.instance_for_test() as instance:
        seed(settings)
        replay(settings, dt.date(2013, 1, 1), 45)
        resources = platform_defs().resources
        assert run_days(instance, "ingest_landing", "2013-01-01", "2013-02-14").success
        assert dg.materialize(
            [*raw_reference_tables, dim_carriers, dim_airports, dim_planes], instance=instance, resources=resources
        ).success
        assert run_days(instance, "load_warehouse", "2013-01-01", "2013-02-14").success
        assert run_days(instance, "build_features", "2013-01-01", "2013-02-14").success
        yield instance


def test_train_promote_score_measure_and_roll_back(settings, six_weeks, mlflow_server):  # noqa: F811
    instance = six_weeks
    # The retraining sensor asks for a first model: enough labelled days and no model yet.
    request = _retraining(instance)
    assert (
        request.tags["ml_platform/retrain_reason"] == "45 new labelled days (2013-01-01..2013-02-14) and no model yet"
    )
    cursor = _tick(instance).cursor  # the automation sensor's first tick
    assert run_days(instance, "build_features", "2013-02-08", "2013-02-14").success  # while no champion
    assert _tick(instance, cursor).get_requested_partitions(PREDICTIONS) == set()  # nothing to score with

    first = _train(instance, "2013-01-31")
    assert first[MODEL]["training_cutoff"].value == "2013-01-24"  # the newest 7 days held out
    assert first[CHAMPION]["decision"].value == "promoted"  # the first model becomes champion
    assert first[CHAMPION]["reason"].value == "no champion yet"
    version = first[MODEL]["version"].value
    assert first[MODEL]["mlflow_run"].value.startswith("http://127.0.0.1:5000/#/experiments/")

    # Lineage back to Dagster, on the MLflow side.
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    run_id = client.get_model_version("flight_delay_classifier", str(version)).run_id
    run = client.get_run(run_id)
    assert run.data.tags["ml_platform.training_cutoff"] == "2013-01-24"
    assert run.data.tags["dagster.asset_key"] == "models/flight_delay_model"
    assert run.data.tags["dagster.run_id"]
    assert 0.5 < run.data.metrics["roc_auc"] < 1
    assert run.inputs.dataset_inputs[0].dataset.digest
    artifacts = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert {"plots/roc_curve.png", "plots/pr_curve.png", "plots/calibration.png"} <= artifacts

    # The days that came while there was no champion are scored once there is one, then measured.
    result = _tick(instance, cursor)
    assert sorted(result.get_requested_partitions(PREDICTIONS)) == [f"2013-02-{d:02d}" for d in range(8, 15)]
    assert result.get_requested_partitions(keys.PERFORMANCE) == result.get_requested_partitions(PREDICTIONS)
    # Days no training has seen yet: 02-01..02-14 after the training set's newest day, 01-31.
    request = _retraining(instance)
    assert (
        request.tags["ml_platform/retrain_reason"] == "14 new labelled days (2013-02-01..2013-02-14) since 2013-01-31"
    )

    # Days after the cut-off are scored; days it trained on are not.
    scoring = run_days(instance, "score_days", "2013-01-20", "2013-02-07")
    assert scoring.success
    with connect_warehouse(settings.warehouse, read_only=True) as conn:
        scored = dict(
            conn.execute("SELECT flight_date, count(*) FROM ml.predictions GROUP BY ALL ORDER BY 1").fetchall()
        )
        flights = dict(
            conn.execute(
                "SELECT flight_date, count(*) FROM core.fct_flights WHERE flight_date BETWEEN '2013-01-25' "
                "AND '2013-02-07' GROUP BY ALL"
            ).fetchall()
        )
        performance = conn.execute("SELECT count(*), min(roc_auc) FROM ml.model_performance").fetchone()
    assert min(scored) == dt.date(2013, 1, 25) and scored == flights  # every flight, once
    assert performance[0] == 14 and performance[1] > 0.5
    published = open_store(settings.lake_url).list("published/predictions")
    assert len(published) == 19  # one file per day of the run, empty days included
    # Each day's partition says what happened to that day; the columns are on the newest day only.
    meta = {
        r.partition_key: r.asset_materialization.metadata
        for r in instance.fetch_materializations(PREDICTIONS, limit=100).records
        if r.run_id == scoring.run_id
    }
    assert meta["2013-01-25"]["dagster/row_count"].value == flights[dt.date(2013, 1, 25)]
    assert "left_as_it_was" in meta["2013-01-20"] and "dagster/row_count" not in meta["2013-01-20"]
    assert [day for day, m in meta.items() if "dagster/column_schema" in m] == ["2013-02-07"]
    measured = instance.get_latest_materialization_event(keys.PERFORMANCE)
    assert measured.asset_materialization.partition == "2013-02-07"
    assert measured.asset_materialization.metadata["dagster/row_count"].value == 1  # one model version that day

    # A newer champion does not rescore the past.
    second = _train(instance, "2013-02-07")
    # The decision follows from the two scores on the same held-out days, whichever way it goes.
    gate = second[CHAMPION]
    challenger_auc, champion_auc = gate["challenger_roc_auc"].value, gate["champion_roc_auc"].value
    assert 0.5 < challenger_auc < 1 and 0.5 < champion_auc < 1
    promoted = challenger_auc >= champion_auc + promotion.DEFAULT_MARGIN
    assert gate["decision"].value == ("promoted" if promoted else "refused")
    assert gate["champion_version"].value == (second[MODEL]["version"].value if promoted else version)
    # The same training data again: no new training set, no new model version.
    again = (
        platform_defs()
        .resolve_job_def("train_and_promote")
        .execute_in_process(
            instance=instance, run_config={"ops": {"features__training_set": {"config": {"last_day": "2013-02-07"}}}}
        )
    )
    assert again.success and again.get_asset_materialization_events() == []
    assert (
        instance.get_latest_materialization_event(MODEL).asset_materialization.metadata["version"]
        == second[MODEL]["version"]
    )
    request = _retraining(instance)  # only the days after 02-07 count, not the refused or promoted past
    assert request.tags["ml_platform/retrain_reason"] == "7 new labelled days (2013-02-08..2013-02-14) since 2013-02-07"
    assert run_days(instance, "score_days", "2013-02-01", "2013-02-14").success
    with connect_warehouse(settings.warehouse, read_only=True) as conn:
        versions = dict(
            conn.execute("SELECT flight_date, min(model_version) FROM ml.predictions GROUP BY ALL").fetchall()
        )
        duplicates = conn.execute(
            "SELECT count(*) FROM (SELECT flight_date, carrier, flight, origin, sched_dep_time FROM "
            "ml.predictions GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()[0]
    assert versions[dt.date(2013, 2, 1)] == version  # kept as it was
    assert dt.date(2013, 2, 10) in versions and duplicates == 0

    # Roll back to the first version, with the same audit record.
    rollback = (
        platform_defs()
        .resolve_job_def("rollback_champion")
        .execute_in_process(
            instance=instance, run_config={"ops": {"models__champion": {"config": {"rollback_to": version}}}}
        )
    )
    assert rollback.success
    audit = instance.get_latest_materialization_event(CHAMPION).asset_materialization.metadata
    assert audit["decision"].value == "rollback" and audit["champion_version"].value == version
    alias = client.get_model_version_by_alias("flight_delay_classifier", "champion")
    assert int(alias.version) == version

    # A model that does not fit today's features is refused at scoring, naming the columns.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ft, "NUMERIC_FEATURES", (*ft.NUMERIC_FEATURES, "gate_changes_2h"))
        refused = run_days(instance, "score_days", "2013-02-14")
    assert not refused.success
    failure = next(e for e in refused.all_events if e.event_type_value == "STEP_FAILURE")
    assert "does not fit the features" in failure.event_specific_data.error_display_string
    assert "gate_changes_2h" in failure.event_specific_data.error_display_string

    # An unreachable registry fails training clearly and moves no alias.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
        job = platform_defs().resolve_job_def("train_and_promote")
        down = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not down.success
    failure = next(e for e in down.all_events if e.event_type_value == "STEP_FAILURE")
    assert "MLflow registry unavailable, no alias moved" in failure.event_specific_data.error_display_string
    alias = client.get_model_version_by_alias("flight_delay_classifier", "champion")
    assert int(alias.version) == version

    # A training set that breaks its contract stops training, with the check's message.
    class NoBigPlanes(contracts.FlightFeatures):
        seats: pl.Int32 = pa.Field(nullable=True, le=10)  # every real plane breaks it

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(contracts, "FlightFeatures", NoBigPlanes)
        job = platform_defs().resolve_job_def("train_and_promote")
        config = {"ops": {"features__training_set": {"config": {"last_day": "2013-02-10"}}}}
        stopped = job.execute_in_process(instance=instance, run_config=config, raise_on_error=False)
    assert not stopped.success
    assert MODEL not in {e.asset_key for e in stopped.get_asset_materialization_events()}
    check = next(e for e in stopped.get_asset_check_evaluations() if e.check_name == "contract")
    assert not check.passed and "rows break NoBigPlanes" in check.description

    # A day whose features fail a blocking check is not scored; the other days flow on.
    cursor = _tick(instance).cursor
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(contracts, "FlightFeatures", NoBigPlanes)
        assert not run_days(instance, "build_features", "2013-02-14").success
    assert run_days(instance, "build_features", "2013-02-13").success
    assert sorted(_tick(instance, cursor).get_requested_partitions(PREDICTIONS)) == ["2013-02-13"]
