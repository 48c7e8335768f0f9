"""`make run` for real, then the next days land: with no click, under the real `dagster dev`
and its daemon, every landed day becomes lake, warehouse, features and predictions, the model
retrains when its policy says so, and nothing fails. Stopping and restarting the platform
between deliveries neither loses nor repeats a file; landing the same files again starts no
run. Driven through Dagster's GraphQL API,
as the UI does, and checked in the published Parquet and in MLflow."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import psutil
import pytest
import requests

from ml_platform.io.store import open_store
from ml_platform.io.warehouse import connect_warehouse
from ml_platform.pipeline import lake
from ml_platform.settings import Settings
from ml_platform_tests.e2e.platform import Platform, partition_range

pytestmark = pytest.mark.slow

FIRST_WEEK = 7
MODEL_NAME = "flight_delay_classifier"


def _replay(platform: Platform, start: str, days: int) -> None:
    cli = str(Path(sys.executable).parent / "ml-platform")
    subprocess.run(
        [cli, "replay", "--start", start, "--days", str(days)], env=platform.env, check=True, capture_output=True
    )


def _mlflow(platform: Platform) -> mlflow.MlflowClient:
    """A client of the MLflow server this start of the platform runs (its port may change across starts)."""
    return mlflow.MlflowClient(tracking_uri=platform.service("mlflow"))


def _settled(platform: Platform, predicted_days: int):
    """True once `predicted_days` days have predictions and no run is queued or running."""
    return platform.materialized_partitions("models", "predictions") >= predicted_days and not platform.busy()


def _trained(platform: Platform, times: int):
    """True once `times` trainings succeeded and no run is queued or running."""
    done = [r for r in platform.runs("train_and_promote") if r["status"] == "SUCCESS"]
    return len(done) >= times and not platform.busy()


def _ingested_days(platform: Platform) -> list[str]:
    days = []
    for run in platform.runs("ingest_landing"):
        first, last = map(dt.date.fromisoformat, partition_range(run))
        days += [str(first + dt.timedelta(days=i)) for i in range((last - first).days + 1)]
    return sorted(days)


def _every_server_listens_on_loopback_only(platform: Platform) -> None:
    listening = []
    for process in [psutil.Process(platform.proc.pid), *psutil.Process(platform.proc.pid).children(recursive=True)]:
        try:
            listening += [c.laddr for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        except psutil.Error:  # a run's process that ended meanwhile
            continue
    assert len(listening) >= 6  # Dagster, MLflow, the weather API, Kafka and its log, the prediction service
    assert {addr.ip for addr in listening} == {"127.0.0.1"}, listening


def _the_service_answers_like_the_batch(platform: Platform, settings: Settings) -> None:
    """The prediction service of `make run` scores a day's flight as the batch did, with the same version."""
    day = dt.date(2013, 1, 10)
    batch = lake.read_partition(open_store(settings.lake_url), "predictions", day, zone="published").row(0, named=True)
    flight = {k: batch[k] for k in ("carrier", "flight", "origin", "sched_dep_time")}
    features = lake.read_partition(open_store(settings.lake_url), "flight_features", day, zone="published")
    dest = features.filter(**flight)["dest"][0]
    body = {"flights": [{**flight, "dest": dest, "flight_date": str(day)}]}

    def answered():
        response = requests.post(f"{platform.service('serving')}/predict", json=body, timeout=10)
        return response.json() if response.status_code == 200 else None

    answer = platform.wait_for(answered, "the prediction service to have its champion and features", 120)
    [online] = answer["predictions"]
    assert online["model_version"] == batch["model_version"]
    assert abs(online["probability"] - batch["probability"]) < 1e-9


def _daemon_pids(platform: Platform) -> set[int]:
    pids = set()
    for child in psutil.Process(platform.proc.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "dagster-daemon" in " ".join(child.cmdline()):
                pids.add(child.pid)
        except psutil.Error:  # it ended while being looked at
            continue
    return pids


def _a_killed_daemon_is_started_again(platform: Platform) -> None:
    [daemon] = _daemon_pids(platform)
    psutil.Process(daemon).kill()
    platform.wait_for(lambda: _daemon_pids(platform) - {daemon}, "ml-platform up to start the daemon again", 60)
    log = (platform.home.parent / "up.log").read_text()
    assert "dagster-daemon exited" in log and "starting it again" in log


def test_landed_days_become_predictions_and_a_retrained_model(tmp_path):
    platform = Platform(tmp_path / "home")
    settings = Settings.from_env(platform.env)
    platform.start(replay_days=FIRST_WEEK)  # `make run`: seeds, lands the first week
    started = time.monotonic()
    try:
        # The first week: one ingestion run, then warehouse, features, a first model, its predictions.
        platform.wait_for(lambda: _settled(platform, FIRST_WEEK), "the first week to reach predictions", 900)
        assert [partition_range(r) for r in platform.runs("ingest_landing")] == [("2013-01-01", "2013-01-07")]
        first_model = _mlflow(platform).get_model_version_by_alias(MODEL_NAME, "champion")
        cutoff = dt.date.fromisoformat(first_model.tags["ml_platform.training_cutoff"])
        assert cutoff == dt.date(2013, 1, 6)  # a first week trains with its newest day held out
        assert requests.get(f"{platform.service('mlflow')}/health", timeout=10).ok
        # Three more days arrive and flow on their own.
        _replay(platform, "2013-01-08", 3)
        platform.wait_for(lambda: _settled(platform, 10), "01-08..01-10 to reach predictions", 600)
        _every_server_listens_on_loopback_only(platform)
        _the_service_answers_like_the_batch(platform, settings)
        _a_killed_daemon_is_started_again(platform)
    finally:
        assert platform.stop() == 0  # a clean Ctrl-C

    _replay(platform, "2013-01-11", 4)  # delivered while the platform is down
    platform.start(replay_days=FIRST_WEEK)  # lands the first week again: same files, no new run
    try:
        platform.wait_for(lambda: _settled(platform, 14), "the days landed while down to be predicted", 600)
        # 01-08..01-14 are 7 days no model has seen: the policy retrains once the platform is idle.
        platform.wait_for(lambda: _trained(platform, 2), "the retrain after 01-14", 600)
        print(f"14 days landed to predicted and retrained, with a restart: {time.monotonic() - started:.0f} s")
        reasons = sorted(
            t["value"]
            for r in platform.runs("train_and_promote")
            for t in r["tags"]
            if t["key"] == "ml_platform/retrain_reason"
        )
        assert reasons == [
            "7 new labelled days (2013-01-01..2013-01-07) and no model yet",
            "7 new labelled days (2013-01-08..2013-01-14) since 2013-01-07",
        ]
        assert len(_mlflow(platform).search_model_versions(f"name = '{MODEL_NAME}'")) == 2

        # Every file ingested once, across the restart.
        assert _ingested_days(platform) == [str(dt.date(2013, 1, d)) for d in range(1, 15)]

        # The same files landed again start nothing (the reference tables' 10-minute
        # observation may run meanwhile: a schedule, not caused by the files).
        def caused_by_data() -> list[dict]:
            return [r for r in platform.runs() if not r["jobName"].endswith("observe_reference_tables")]

        runs_before = len(caused_by_data())
        _replay(platform, "2013-01-08", 7)
        time.sleep(35)  # two landing-sensor ticks and two automation ticks
        assert len(caused_by_data()) == runs_before
        assert [r for r in platform.runs() if r["status"] != "SUCCESS"] == []  # automation's runs too
    finally:
        assert platform.stop() == 0

    store = open_store(settings.lake_url)
    assert lake.read_partition(store, "flights", dt.date(2013, 1, 1)).height == 842
    for day in range(8, 15):
        predicted = lake.read_partition(store, "predictions", dt.date(2013, 1, day), zone="published")
        flights = lake.read_partition(store, "flight_features", dt.date(2013, 1, day), zone="published")
        assert predicted.height == flights.height > 0, day  # every flight of every new day
    with connect_warehouse(settings.warehouse, read_only=True) as conn:
        (duplicates,) = conn.execute(
            "SELECT count(*) FROM (SELECT flight_date, carrier, flight, origin, sched_dep_time "
            "FROM ml.predictions GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()
        (fact_rows,) = conn.execute("SELECT count(*) FROM core.fct_flights WHERE flight_date = '2013-01-01'").fetchone()
    assert duplicates == 0 and fact_rows == 842  # reruns replaced rows, never added them
