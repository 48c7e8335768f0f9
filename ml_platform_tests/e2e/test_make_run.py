"""`make run` for real: `ml-platform up` seeds, starts the weather API, MLflow and `dagster dev`
on loopback, and with no clicks the replayed days land in the lake. Stopping and starting it
again keeps the run history and ingests nothing twice; a day landed while it was down is
picked up once. Driven through Dagster's GraphQL API, as the UI does."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from ml_platform.lib import lake
from ml_platform.lib.storage import open_store
from ml_platform.settings import Settings
from ml_platform_tests.conftest import free_port, stop_process

pytestmark = pytest.mark.slow

RUNS = """
query Runs {
  runsOrError(filter: {pipelineName: "ingest_landing"}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}"""


class Platform:
    def __init__(self, home: Path):
        self.home = home
        self.dagster_port, self.mlflow_port, self.weather_port = free_port(), free_port(), free_port()
        self.env = {
            **os.environ,
            "ML_PLATFORM_HOME": str(home),
            "ML_PLATFORM_WEATHER_API_URL": f"http://127.0.0.1:{self.weather_port}",
        }
        self.env.pop("DAGSTER_HOME", None)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [
            str(Path(sys.executable).parent / "ml-platform"), "up", "--replay-days", "3",
            "--dagster-port", str(self.dagster_port), "--mlflow-port", str(self.mlflow_port),
        ]  # fmt: skip
        log = open(self.home.parent / "up.log", "ab")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log, start_new_session=True)

    def stop(self) -> int:
        stop_process(self.proc)
        return self.proc.returncode

    def graphql(self, query: str) -> dict:
        url = f"http://127.0.0.1:{self.dagster_port}/graphql"
        response = requests.post(url, json={"query": query}, timeout=30)
        response.raise_for_status()
        return response.json()["data"]

    def ingest_runs(self) -> list[dict]:
        return self.graphql(RUNS)["runsOrError"]["results"]

    def wait_for(self, predicate, what: str, timeout: float = 240):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"ml-platform up exited: see {self.home.parent / 'up.log'}"
            try:
                value = predicate()
                if value:
                    return value
            except requests.RequestException:
                pass
            time.sleep(2)
        raise TimeoutError(f"waited {timeout}s for {what}; log: {self.home.parent / 'up.log'}")


def _partitions(run: dict) -> tuple[str, str]:
    tags = {t["key"]: t["value"] for t in run["tags"]}
    single = tags.get("dagster/partition")
    return (
        single or tags["dagster/asset_partition_range_start"],
        single or tags["dagster/asset_partition_range_end"],
    )


def test_make_run_ingests_hands_free_and_survives_a_restart(tmp_path):
    platform = Platform(tmp_path / "home")
    platform.start()
    try:
        runs = platform.wait_for(
            lambda: [r for r in platform.ingest_runs() if r["status"] == "SUCCESS"],
            "the first replayed days to be ingested",
        )
        assert [_partitions(r) for r in runs] == [("2013-01-01", "2013-01-03")]
        assert requests.get(f"http://127.0.0.1:{platform.mlflow_port}/health", timeout=10).ok
    finally:
        assert platform.stop() == 0  # a clean Ctrl-C

    settings = Settings.from_env(platform.env)
    store = open_store(settings.lake_url)
    assert lake.read_partition(store, "flights", dt.date(2013, 1, 1)).height == 842

    # A day delivered while the platform is down is picked up after the restart, once.
    subprocess.run(
        [str(Path(sys.executable).parent / "ml-platform"), "replay", "--start", "2013-01-04", "--days", "1"],
        env=platform.env, check=True, capture_output=True,
    )  # fmt: skip
    platform.start()
    try:
        runs = platform.wait_for(
            lambda: (rs := platform.ingest_runs()) and len(rs) >= 2 and all(r["status"] == "SUCCESS" for r in rs) and rs,
            "the day landed while down to be ingested",
        )
        time.sleep(35)  # two more sensor ticks over unchanged files
        runs = platform.ingest_runs()
        assert sorted(_partitions(r) for r in runs) == [
            ("2013-01-01", "2013-01-03"),  # the history from before the restart is still there
            ("2013-01-04", "2013-01-04"),
        ]
        assert all(r["status"] == "SUCCESS" for r in runs)
    finally:
        assert platform.stop() == 0
