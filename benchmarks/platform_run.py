"""(a) The platform: landing files to predictions through Dagster, as a user backfills a year.

``PlatformHome`` is a fresh data home with the platform's real resources
(``Settings.from_env`` → ``definitions.resources``): the operational database seeded
with the scale's reference tables, the weather API (``make_server``) and an
``mlflow server`` on loopback ports, and the Dagster instance ``make run`` would use
(the repository's ``dagster.yaml`` under the home). Jobs run in process, one run per
layer over the whole range of days (``BackfillPolicy.single_run``), as the tests do.
The MLflow server starts only for a run that trains: the data stages never talk to it,
and an idle server (about 0.55 GB) would otherwise count in their peak memory.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import dagster as dg

from benchmarks.data import FIRST_DAY, LAST_DAY, Inputs, read_reference_csv
from benchmarks.measure import Stopwatch, progress
from ml_platform.defs.lake.reference import raw_reference_tables
from ml_platform.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from ml_platform.defs.warehouse.assets import dim_airports, dim_carriers, dim_planes
from ml_platform.devdata.reference_data import REFERENCE_TABLES
from ml_platform.devdata.weather_server import make_server
from ml_platform.io import ops_db
from ml_platform.ops.bootstrap import prepare_dagster_home
from ml_platform.settings import Settings
from ml_platform_tests.mlflow_server import start_mlflow_server


def _stop_group(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGINT the process group we started (the MLflow server and its worker), then SIGKILL what is left."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        proc.wait()


def seed_ops_database(url: str, reference_dir: Path) -> None:
    """Replace airlines, airports and planes in the operational database with the scale's CSVs."""
    engine = ops_db.engine(url)
    try:
        for name in REFERENCE_TABLES:
            read_reference_csv(reference_dir / f"{name}.csv").write_database(name, engine, if_table_exists="replace")
    finally:
        engine.dispose()


class RunFailed(RuntimeError):
    pass


# Runs log WARNING and above to the console (events still go to the instance, as under `dagster dev`).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _quiet(run_config: dict | None) -> dict:
    return {**QUIET, **(run_config or {})}


class PlatformHome:
    """A fresh data home under ``home`` with every service the platform talks to; a context manager."""

    def __init__(self, home: Path, inputs: Inputs, duckdb_memory_limit: str | None = None, *, mlflow: bool = True):
        self.home, self.inputs = home.resolve(), inputs
        self.duckdb_memory_limit, self.with_mlflow = duckdb_memory_limit, mlflow
        self.failed_checks: list[str] = []
        self.run_ids: list[str] = []

    def __enter__(self) -> Self:
        self.weather = make_server("127.0.0.1", 0)
        threading.Thread(target=self.weather.serve_forever, daemon=True).start()
        self.mlflow = self.instance = None
        try:
            self._start()
        except BaseException:
            self.__exit__()  # the MLflow server runs in a session of its own: never leave it behind
            raise
        return self

    def _start(self) -> None:
        os.environ.update(
            ML_PLATFORM_HOME=str(self.home),
            ML_PLATFORM_WEATHER_API_URL=f"http://127.0.0.1:{self.weather.server_address[1]}",
            ML_PLATFORM_DUCKDB_MEMORY_LIMIT=self.duckdb_memory_limit or "",
        )
        for var in (
            "ML_PLATFORM_LANDING_URL",
            "ML_PLATFORM_LAKE_URL",
            "ML_PLATFORM_OPS_DB_URL",
            "ML_PLATFORM_WAREHOUSE_PATH",  # round 1's setting, refused now
            "ML_PLATFORM_CATALOG_URL",
            "DAGSTER_HOME",
            "MLFLOW_TRACKING_URI",
            "ML_PLATFORM_MLFLOW_UI_URL",
        ):
            os.environ.pop(var, None)
        if self.with_mlflow:
            self.mlflow_url, self.mlflow = start_mlflow_server(self.home / "mlflow")
        else:  # never a server someone else runs on the default port
            self.mlflow_url = f"sqlite:///{self.home / 'mlflow.db'}"
        os.environ.update(MLFLOW_TRACKING_URI=self.mlflow_url, ML_PLATFORM_MLFLOW_UI_URL=self.mlflow_url)
        self.settings = Settings.from_env()
        for folder in (self.settings.landing_url, self.settings.lake_url):
            Path(folder).mkdir(parents=True, exist_ok=True)
        seed_ops_database(self.settings.ops_db_url, self.inputs.reference_dir)
        self.instance = dg.DagsterInstance.from_config(str(prepare_dagster_home(self.settings)))
        from ml_platform.definitions import defs, resources

        self.defs, self.resources = defs(), resources(self.settings)

    def __exit__(self, *exc) -> None:
        if self.instance is not None:
            self.instance.dispose()
        if self.mlflow is not None:
            _stop_group(self.mlflow)
        self.weather.shutdown()
        self.weather.server_close()

    def land(self, days: list[dt.date]) -> None:
        """Deliver the days' files to the landing zone (hard links: same bytes, no copy)."""
        landing = Path(self.settings.landing_url)
        for day in days:
            src, dst = self.inputs.landing_file(day), landing / self.inputs.landing_file(day).name
            dst.unlink(missing_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)

    def _check(self, what: str, result) -> None:
        self.run_ids.append(result.run_id)
        if not result.success:
            errors = [e.event_specific_data.error_display_string for e in result.get_step_failure_events()]
            raise RunFailed(f"{what} failed: {' | '.join(errors) or 'see the Dagster run ' + result.run_id}")
        graph = self.defs.resolve_asset_graph()
        for check in result.get_asset_check_evaluations():
            if not check.passed and graph.get_check_spec(check.asset_check_key).blocking:
                name = f"{check.asset_key.to_user_string()}:{check.check_name}"
                problem = f"{what}: blocking check {name} failed: {check.description}"
                self.failed_checks.append(problem)
                progress(f"WARNING {problem}")

    def run_job(self, name: str, first: dt.date, last: dt.date | None = None, run_config: dict | None = None):
        """One in-process run of a job over one day, or over [first, last] as a single range run."""
        job = self.defs.resolve_job_def(name)
        if last is None or last == first:
            kwargs = {"partition_key": first.isoformat()}
        else:
            kwargs = {"tags": {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()}}
        result = job.execute_in_process(
            instance=self.instance, run_config=_quiet(run_config), raise_on_error=False, **kwargs
        )
        self._check(f"{name} {first}..{last or first}", result)
        return result

    def materialize(self, assets: list, what: str) -> None:
        result = dg.materialize(
            assets, instance=self.instance, resources=self.resources, run_config=QUIET, raise_on_error=False
        )
        self._check(what, result)

    def train(self, run_config: dict | None = None) -> None:
        job = self.defs.resolve_job_def("train_and_promote")
        result = job.execute_in_process(instance=self.instance, run_config=_quiet(run_config), raise_on_error=False)
        self._check("train_and_promote", result)

    def events_written(self, run_ids: list[str]) -> int:
        """Events these runs wrote to the Dagster instance (what the UI and automation read)."""
        return sum(len(self.instance.all_logs(run_id)) for run_id in run_ids)

    def count(self, sql: str) -> int:
        with self.resources["warehouse"].connect() as conn:
            return conn.execute(sql).fetchone()[0]


def run(
    inputs: Inputs,
    work: Path,
    watch: Stopwatch,
    *,
    train: bool = True,
    duckdb_memory_limit: str | None = None,
    first: dt.date = FIRST_DAY,
    last: dt.date = LAST_DAY,
) -> tuple:
    """Every stage over [first, last]; returns (the warehouse, extra facts for the report)."""
    rows = inputs.flights
    events: dict[str, int] = {}

    @contextmanager
    def stage(name: str):
        runs_before = len(platform.run_ids)
        with watch.stage(name, rows=rows):
            yield
        events[name] = platform.events_written(platform.run_ids[runs_before:])  # counted outside the stage's time

    with PlatformHome(work / "home", inputs, duckdb_memory_limit, mlflow=train) as platform:
        platform.land(list(inputs.days))
        with stage("lake"):
            platform.run_job("ingest_landing", first, last)
            platform.materialize(raw_reference_tables, "reference tables to the lake")
        with stage("warehouse"):
            platform.materialize([dim_carriers, dim_airports, dim_planes], "dimensions")
            platform.run_job("load_warehouse", first, last)
        with stage("features"):
            platform.run_job("build_features", first, last)
        facts: dict = {}
        if train:
            with stage("training"):
                platform.train()
            with stage("predictions"):
                platform.run_job("score_days", first, last)
            facts["predictions_rows"] = platform.count("SELECT count(*) FROM ml.predictions")
        facts["failed_checks"] = platform.failed_checks
        facts["dagster_events"] = events
        return platform.settings.warehouse, facts
