"""SIGKILL at the worst moment of every stage, then the rerun converges to the clean run.

One data home takes the first four days (2013-01-01..01-04) through every stage; each stage first runs
in a process of its own that kills itself with SIGKILL at a kill point (`ml_platform/faults.py`):
a lake file written but not renamed, a warehouse transaction done but not committed, an MLflow
run half-logged, a model version registered before its alias. After each crash a reader sees no
half-written file and the warehouse opens; the run is marked failed and its pool slots freed, as
the daemon's run monitoring does by itself (`ops/test_run_launcher.py`); the stage is run again.
At the end every table equals a second home's clean run: same rows, no duplicate flight key.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys

import dagster as dg
import mlflow
import polars as pl
import pytest
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter

from ml_platform.defs.lake.reference import raw_reference_tables
from ml_platform.defs.warehouse.assets import dim_airports, dim_carriers, dim_planes
from ml_platform.faults import POINTS
from ml_platform.io.registry import EXPERIMENT, MODEL_NAME
from ml_platform.io.store import TMP_PREFIX, open_store
from ml_platform.io.warehouse import connect_warehouse
from ml_platform.ops.bootstrap import prepare_dagster_home, replay, seed
from ml_platform.pipeline import lake
from ml_platform.settings import Settings
from ml_platform_tests.helpers import platform_defs, run_days

pytestmark = pytest.mark.slow

FIRST, LAST = "2013-01-01", "2013-01-04"
# Each stage's job, and the kill points its killed runs die at, one run each, before the rerun.
STAGES = (
    ("ingest_landing", ("lake.write",)),
    ("load_warehouse", ("warehouse.commit",)),
    ("build_features", ("warehouse.commit",)),
    ("train_and_promote", ("training.logging", "registry.alias")),
    ("score_days", ("lake.write",)),
)
TABLES = ("staging.flights", "quarantine.flights", "core.fct_flights", "staging.weather", "features.flight_features")
KEYED = {  # the natural key of each table whose rows are flights
    "core.fct_flights": "flight_date, carrier, flight, origin, sched_dep_time",
    "features.flight_features": "flight_date, carrier, flight, origin, sched_dep_time",
    "ml.predictions": "flight_date, carrier, flight, origin, sched_dep_time",
}
KILLED_RUN = """
import sys
import dagster as dg
from ml_platform_tests.defs.test_crash_safety import run_stage
with dg.DagsterInstance.get() as instance:
    run_stage(instance, sys.argv[1])
"""


def run_stage(instance: dg.DagsterInstance, job: str):
    """One stage over the week: the daily stages in one range run, training on the whole week."""
    if job == "train_and_promote":
        return platform_defs().resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False)
    return run_days(instance, job, FIRST, LAST)


def _home(tmp_path, name: str, monkeypatch) -> tuple[Settings, dg.DagsterInstance]:
    monkeypatch.setenv("ML_PLATFORM_HOME", str(tmp_path / name))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # each home's own store file
    settings = Settings.from_env()
    seed(settings)
    replay(settings, dt.date(2013, 1, 1), 4)
    home = prepare_dagster_home(settings)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.from_config(str(home))
    resources = platform_defs().resources
    assert dg.materialize(
        [*raw_reference_tables, dim_carriers, dim_airports, dim_planes], instance=instance, resources=resources
    ).success
    return settings, instance


def _killed(instance: dg.DagsterInstance, job: str, point: str) -> None:
    """The stage in a process of its own that dies at ``point``; then what run monitoring does."""
    env = {**os.environ, "ML_PLATFORM_KILL_AT": point}
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, job], env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, f"{job} did not die at {point}: {proc.stderr[-2000:]}"
    [run] = instance.get_runs(RunsFilter(job_name=job, statuses=[DagsterRunStatus.STARTED]))
    instance.report_run_failed(run)
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def _readers_see_whole_files_and_an_open_warehouse(settings: Settings) -> None:
    store = open_store(settings.lake_url)
    files = store.list("")
    assert files and not [f for f in files if f.path.rsplit("/", 1)[-1].startswith(TMP_PREFIX)]
    for f in files:
        if f.path.endswith(".parquet"):
            pl.read_parquet(store.read_bytes(f.path))  # whole, or not there
    with connect_warehouse(settings.warehouse, read_only=True) as conn:  # opens, and every table reads
        tables = conn.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
        for schema, table in tables:
            conn.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()


def _tables(settings: Settings) -> dict[str, int]:
    """Rows per table, and duplicate natural keys per keyed table (must be 0)."""
    with connect_warehouse(settings.warehouse, read_only=True) as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        for table, key in KEYED.items():
            counts[f"{table} duplicate keys"] = conn.execute(
                f"SELECT count(*) FROM (SELECT {key} FROM {table} GROUP BY ALL HAVING count(*) > 1)"
            ).fetchone()[0]
        counts["ml.predictions"] = conn.execute("SELECT count(*) FROM ml.predictions").fetchone()[0]
    store = open_store(settings.lake_url)
    # The first model holds the last day out of training and scores it.
    counts["published predictions"] = lake.read_partition(
        store, "predictions", dt.date.fromisoformat(LAST), zone="published"
    ).height
    return counts


def test_a_rerun_after_sigkill_at_every_stage_converges_to_the_clean_run(tmp_path, settings, monkeypatch):
    assert {point for _, points in STAGES for point in points} == set(POINTS)  # every kill point is tried

    clean_settings, clean = _home(tmp_path, "clean", monkeypatch)
    for job, _ in STAGES:
        assert run_stage(clean, job).success, job
    expected = _tables(clean_settings)
    clean.dispose()

    crashed_settings, crashed = _home(tmp_path, "crashed", monkeypatch)
    for job, points in STAGES:
        for point in points:
            _killed(crashed, job, point)
            _readers_see_whole_files_and_an_open_warehouse(crashed_settings)
        assert run_stage(crashed, job).success, f"{job} rerun after kills at {points}"
    assert _tables(crashed_settings) == expected
    # 842 + 943 + 914 + 915 real flights; the fourth day's 915 are scored.
    assert expected["core.fct_flights"] == expected["features.flight_features"] == 3614
    assert expected["published predictions"] == 915 and expected["core.fct_flights duplicate keys"] == 0

    # The registry: the champion is a whole model; what the kills left stays visible, unused.
    client = mlflow.MlflowClient(crashed_settings.mlflow_tracking_uri)
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert client.get_run(champion.run_id).info.status == "FINISHED"
    versions = {int(v.version) for v in client.search_model_versions(f"name = '{MODEL_NAME}'")}
    aliased = {int(v) for v in client.get_registered_model(MODEL_NAME).aliases.values()}
    assert versions == {1, 2} and aliased == {2}  # 1: registered when the process died, never an alias
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED", "RUNNING"]  # RUNNING: the killed one
    crashed.dispose()
