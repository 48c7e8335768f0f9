"""Under the real `dagster dev`: landed days flow on their own through the lake into the
warehouse (reference tables observed, dimensions loaded, daily tables on upstream change),
and several warehouse runs launched at once all succeed: the `warehouse` pool lets one step
at a time open the DuckDB file, so no run ever meets a lock error."""

from __future__ import annotations

import duckdb
import pytest

from ml_platform.settings import Settings
from ml_platform_tests.e2e.platform import Platform

pytestmark = pytest.mark.slow

DAYS = 5


def test_days_flow_into_the_warehouse_and_concurrent_runs_never_lock(tmp_path):
    platform = Platform(tmp_path / "home")
    platform.start(replay_days=DAYS)
    try:
        platform.wait_for(
            lambda: platform.materialized_partitions("core", "fct_flights") >= DAYS,
            f"core/fct_flights to have {DAYS} days with no click",
            timeout=300,
        )
        # Four runs at once, each opening the warehouse file: three single days and a range.
        launched = [
            platform.launch("load_warehouse", {"dagster/partition": f"2013-01-0{d}"}) for d in (1, 2, 3)
        ]
        launched.append(
            platform.launch(
                "load_warehouse",
                {
                    "dagster/asset_partition_range_start": "2013-01-01",
                    "dagster/asset_partition_range_end": f"2013-01-0{DAYS}",
                },
            )
        )
        done = platform.wait_for(
            lambda: (
                runs := {r["runId"]: r["status"] for r in platform.runs("load_warehouse") if r["runId"] in launched}
            )
            and all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in runs.values())
            and len(runs) == len(launched)
            and runs,
            "the concurrent warehouse runs to finish",
            timeout=300,
        )
        assert set(done.values()) == {"SUCCESS"}, done
        assert [r for r in platform.runs() if r["status"] == "FAILURE"] == []  # automation's too
    finally:
        assert platform.stop() == 0

    settings = Settings.from_env(platform.env)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        per_day = conn.execute(
            "SELECT flight_date, count(*) FROM core.fct_flights GROUP BY ALL ORDER BY 1"
        ).fetchall()
    assert len(per_day) == DAYS and per_day[0][1] == 842  # reruns replaced, never duplicated
