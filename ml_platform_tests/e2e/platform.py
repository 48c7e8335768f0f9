"""A running `ml-platform up` (weather API, MLflow, `dagster dev`) for end-to-end tests,
on free loopback ports and a temporary data home, driven through Dagster's GraphQL API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from ml_platform_tests.conftest import free_port, stop_process

RUNS = """
query Runs {
  runsOrError(filter: %s) {
    ... on Runs { results { runId jobName status tags { key value } } }
  }
}"""
PARTITIONS = """
query Partitions {
  assetNodeOrError(assetKey: {path: [%s]}) {
    ... on AssetNode { partitionStats { numMaterialized numFailed } }
  }
}"""


class Platform:
    """`ml-platform up` in a process group of its own, stopped with SIGINT like Ctrl-C."""

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

    def start(self, replay_days: int = 3) -> None:
        cmd = [
            str(Path(sys.executable).parent / "ml-platform"),
            "up",
            "--replay-days",
            str(replay_days),
            "--dagster-port",
            str(self.dagster_port),
            "--mlflow-port",
            str(self.mlflow_port),
        ]
        log = open(self.home.parent / "up.log", "ab")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log, start_new_session=True)

    def service(self, name: str) -> str:
        """The address `ml-platform up` gives a service in the home's services.json."""
        return json.loads((self.home / "services.json").read_text())[name]

    def stop(self) -> int:
        """Ctrl-C; `up` stops its services (each at most 30 s, all at once), so allow it a minute."""
        stop_process(self.proc, timeout=60)
        return self.proc.returncode

    def graphql(self, query: str) -> dict:
        url = f"http://127.0.0.1:{self.dagster_port}/graphql"
        response = requests.post(url, json={"query": query}, timeout=30)
        response.raise_for_status()
        return response.json()["data"]

    def runs(self, job: str | None = None) -> list[dict]:
        """Runs of one job, or of every job (automation's included)."""
        query = RUNS % (f'{{pipelineName: "{job}"}}' if job else "{}")
        return self.graphql(query)["runsOrError"]["results"]

    def busy(self) -> list[dict]:
        """Runs queued or in progress."""
        return [r for r in self.runs() if r["status"] in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")]

    def materialized_partitions(self, *path: str) -> int:
        query = PARTITIONS % ", ".join(f'"{p}"' for p in path)
        node = self.graphql(query)["assetNodeOrError"]
        return (node.get("partitionStats") or {}).get("numMaterialized", 0)

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


def partition_range(run: dict) -> tuple[str, str]:
    tags = {t["key"]: t["value"] for t in run["tags"]}
    single = tags.get("dagster/partition")
    return (
        single or tags["dagster/asset_partition_range_start"],
        single or tags["dagster/asset_partition_range_end"],
    )
