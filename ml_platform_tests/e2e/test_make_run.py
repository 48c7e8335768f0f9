"""`make run` for real: `ml-platform up` seeds, starts the weather API, MLflow and `dagster dev`
on loopback, and with no clicks the replayed days land in the lake. Stopping and starting it
again keeps the run history and ingests nothing twice; a day landed while it was down is
picked up once. Driven through Dagster's GraphQL API, as the UI does."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from ml_platform.lib import lake
from ml_platform.lib.storage import open_store
from ml_platform.settings import Settings
from ml_platform_tests.e2e.platform import Platform, partition_range

pytestmark = pytest.mark.slow


def test_make_run_ingests_hands_free_and_survives_a_restart(tmp_path):
    platform = Platform(tmp_path / "home")
    platform.start()
    try:
        runs = platform.wait_for(
            lambda: [r for r in platform.runs("ingest_landing") if r["status"] == "SUCCESS"],
            "the first replayed days to be ingested",
        )
        assert [partition_range(r) for r in runs] == [("2013-01-01", "2013-01-03")]
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
            lambda: (rs := platform.runs("ingest_landing")) and len(rs) >= 2 and all(r["status"] == "SUCCESS" for r in rs) and rs,
            "the day landed while down to be ingested",
        )
        time.sleep(35)  # two more sensor ticks over unchanged files
        runs = platform.runs("ingest_landing")
        assert sorted(partition_range(r) for r in runs) == [
            ("2013-01-01", "2013-01-03"),  # the history from before the restart is still there
            ("2013-01-04", "2013-01-04"),
        ]
        assert all(r["status"] == "SUCCESS" for r in runs)
    finally:
        assert platform.stop() == 0
