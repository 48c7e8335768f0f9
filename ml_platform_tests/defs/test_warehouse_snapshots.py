"""Snapshots, maintenance and bad settings of the DuckLake warehouse, through real Dagster runs.

* Every load's materialization names the DuckLake snapshot it committed (``ducklake_snapshot_id``),
  and a person can read the tables as they were then (``AT (VERSION => n)``); the snapshot records
  the Dagster run that made it.
* ``warehouse/maintenance`` merges the small files that daily loads leave, expires the snapshots
  older than the retention and deletes the files only they used: same rows, fewer files, and time
  travel to an expired snapshot is refused. It runs nightly on a schedule that is on by default,
  each table's compaction in that table's pool.
* A wrong catalog URL or an unreachable S3 endpoint fails a run at its start with a message naming
  the setting, and a malformed catalog URL fails loading the definitions.
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import duckdb
import pytest

from ml_platform.defs import keys
from ml_platform.defs.lake.reference import raw_reference_tables
from ml_platform.defs.metadata import SNAPSHOT_KEY
from ml_platform.defs.pools import CATALOG_MAINTENANCE, pool_of_table
from ml_platform.defs.warehouse.assets import dim_airports, dim_carriers, dim_planes
from ml_platform.io.warehouse import connect_warehouse
from ml_platform.ops.bootstrap import replay, seed
from ml_platform.settings import Settings
from ml_platform_tests.conftest import free_port
from ml_platform_tests.helpers import platform_defs, run_days


def _metadata(instance, key: dg.AssetKey, partition: str | None = None) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
    ).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


@pytest.fixture
def home(settings):
    """Seeded, three days landed and in the lake, the dimensions loaded."""
    with dg.instance_for_test() as instance:
        seed(settings)
        replay(settings, dt.date(2013, 1, 1), 3)
        assert run_days(instance, "ingest_landing", "2013-01-01", "2013-01-03").success
        dims = [*raw_reference_tables, dim_carriers, dim_airports, dim_planes]
        assert dg.materialize(dims, instance=instance, resources=platform_defs().resources).success
        yield instance


def test_a_load_records_its_snapshot_and_a_person_can_read_the_tables_as_they_were(settings, home):
    instance = home
    first = run_days(instance, "load_warehouse", "2013-01-01")
    assert first.success
    recorded = _metadata(instance, keys.FCT_FLIGHTS)[SNAPSHOT_KEY]
    staging = _metadata(instance, keys.STAGING_FLIGHTS)
    assert staging[SNAPSHOT_KEY] == _metadata(instance, keys.QUARANTINE_FLIGHTS)[SNAPSHOT_KEY] < recorded
    assert run_days(instance, "load_warehouse", "2013-01-02", "2013-01-03").success
    later = _metadata(instance, keys.FCT_FLIGHTS, "2013-01-03")[SNAPSHOT_KEY]
    assert later > recorded

    with connect_warehouse(settings.warehouse, read_only=True) as conn:
        now = conn.execute("SELECT count(*) FROM core.fct_flights").fetchone()[0]
        then = conn.execute(f"SELECT count(*) FROM core.fct_flights AT (VERSION => {int(recorded)})").fetchone()[0]
        made_by = conn.execute(
            "SELECT commit_extra_info FROM snapshots() WHERE snapshot_id = $id", {"id": recorded}
        ).fetchone()[0]
    assert (then, now) == (842, 842 + 943 + 914)
    assert json.loads(made_by)["dagster_run_id"] == first.run_id


def test_maintenance_merges_the_small_files_and_expires_old_snapshots(settings, home, monkeypatch):
    instance = home
    for day in ("2013-01-01", "2013-01-02", "2013-01-03", "2013-01-01", "2013-01-02"):  # a file or two a load
        assert run_days(instance, "load_warehouse", day).success
    first_load = instance.fetch_materializations(keys.FCT_FLIGHTS, limit=10, ascending=True).records[0]
    oldest = first_load.asset_materialization.metadata[SNAPSHOT_KEY].value
    with connect_warehouse(settings.warehouse, read_only=True) as conn:
        rows_before = conn.execute("SELECT count(*), sum(arr_delay) FROM core.fct_flights").fetchone()

    monkeypatch.setenv("ML_PLATFORM_SNAPSHOT_RETENTION_DAYS", "0")  # keep only the current snapshot
    result = platform_defs().resolve_job_def("maintain_warehouse").execute_in_process(instance=instance)
    assert result.success
    meta = _metadata(instance, keys.WAREHOUSE_MAINTENANCE)
    compacted = meta["compacted"]
    for table in ("staging.flights", "core.fct_flights", "staging.weather"):  # a file per day, merged into one
        assert (compacted[table]["files_before"], compacted[table]["files_after"]) == (3, 1), (table, compacted)
    assert meta["files_after"] < meta["files_before"]
    assert meta["snapshots_expired"] > 15 and meta["snapshots_after"] == 1
    assert meta["old_files_deleted"] > 0

    with connect_warehouse(settings.warehouse, read_only=True) as conn:
        assert conn.execute("SELECT count(*), sum(arr_delay) FROM core.fct_flights").fetchone() == rows_before
        with pytest.raises(duckdb.Error, match="(?i)snapshot"):
            conn.execute(f"SELECT count(*) FROM core.fct_flights AT (VERSION => {int(oldest)})").fetchall()


def test_maintenance_runs_nightly_and_in_each_tables_pool():
    defs = platform_defs()
    (schedule,) = [s for s in defs.schedules if s.name == "maintain_warehouse_nightly"]
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert (schedule.job_name, schedule.cron_schedule) == ("maintain_warehouse", "30 3 * * *")
    graph = defs.resolve_job_def("maintain_warehouse").graph
    (maintenance,) = graph.node_defs
    pools = {op.name: op.pool for op in maintenance.node_defs}
    assert pools["compact_staging__flights"] == pool_of_table("staging.flights")
    assert pools["compact_core__fct_flights"] == pool_of_table("core.fct_flights")
    assert pools["expire_snapshots"] == CATALOG_MAINTENANCE
    assert len(pools) == 10 and all(pools.values())


def _failure_text(result) -> str:
    texts = []
    for event in result.all_events:
        data = event.event_specific_data
        error = getattr(data, "error", None)
        texts.append((event.message or "") + (error.to_string() if error is not None else ""))
    return "\n".join(texts)


@pytest.mark.parametrize(
    "environment",
    [
        {"ML_PLATFORM_CATALOG_URL": "postgres:dbname=warehouse host=127.0.0.1 port={port} user=postgres"},
        {"ML_PLATFORM_LAKE_URL": "s3://nowhere/lake", "AWS_ENDPOINT_URL": "http://127.0.0.1:{port}"},
    ],
    ids=["catalog_unreachable", "s3_unreachable"],
)
def test_a_wrong_setting_fails_the_run_at_once_naming_it(settings, monkeypatch, environment):
    port = free_port()  # nothing listens there
    for name, value in environment.items():
        monkeypatch.setenv(name, value.format(port=port))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    named = next(iter(environment))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [dim_carriers], instance=instance, resources=platform_defs().resources, raise_on_error=False
        )
    assert not result.success
    text = _failure_text(result)
    assert named in text and ("unreachable" in text or "Connection refused" in text), text[-2000:]


@pytest.mark.parametrize("url", ["sqlite", "mysql:warehouse", "postgres:", "ducklake:s3://bucket/catalog"])
def test_a_malformed_catalog_url_fails_at_start_up(settings, monkeypatch, url):
    monkeypatch.setenv("ML_PLATFORM_CATALOG_URL", url)
    with pytest.raises(ValueError, match="ML_PLATFORM_CATALOG_URL"):
        Settings.from_env()


def test_the_round_1_warehouse_file_setting_is_refused(settings, monkeypatch):
    monkeypatch.setenv("ML_PLATFORM_WAREHOUSE_PATH", "/tmp/warehouse.duckdb")
    with pytest.raises(ValueError, match="ML_PLATFORM_WAREHOUSE_PATH is no longer read.*ML_PLATFORM_CATALOG_URL"):
        Settings.from_env()
