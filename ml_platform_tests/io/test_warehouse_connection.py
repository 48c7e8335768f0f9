"""The warehouse connection: DuckLake from the wheels' extensions, the writer lock, snapshots, clear errors.

* Extensions are LOADed by path from the PyPI wheels: after connecting, writing and reading a lake
  on S3, nothing was installed into the user's ``~/.duckdb``.
* The SQLite catalog is in WAL mode, so a person reads (read-only) while a writer holds the lock.
* A write's snapshot id is kept; time travel to it reads the table as it was.
* A catalog that can not be reached, an S3 endpoint that does not answer, a catalog made for
  another lake: each is a WarehouseConfigError naming the setting, within seconds.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from ml_platform.io.warehouse import (
    WarehouseConfig,
    WarehouseConfigError,
    committed_snapshot,
    connect_warehouse,
    detach_warehouse,
    run_ddl,
    snapshot_read,
    transaction,
)
from ml_platform_tests.conftest import free_port
from ml_platform_tests.warehouses import embedded_config

CREATE = ("CREATE SCHEMA IF NOT EXISTS core", "CREATE TABLE IF NOT EXISTS core.t (day INT, x BIGINT)")


@pytest.fixture
def config(tmp_path):
    config = embedded_config(tmp_path / "warehouse")
    yield config
    detach_warehouse(config)


def test_extensions_come_from_the_wheels_and_nothing_is_installed(tmp_path, s3_env):
    """A fresh process with its own HOME: DuckLake (SQLite catalog) and httpfs (a lake on S3), no ~/.duckdb."""
    script = textwrap.dedent(
        f"""
        import json
        from ml_platform.io.warehouse import WarehouseConfig, connect_warehouse, run_ddl, transaction
        config = WarehouseConfig("sqlite:{tmp_path}/w/catalog.sqlite", "s3://{s3_env}/lake/warehouse/")
        conn = connect_warehouse(config, lake_url="s3://{s3_env}/lake")
        run_ddl(conn, "CREATE SCHEMA IF NOT EXISTS core", "CREATE TABLE IF NOT EXISTS core.t (x INT)")
        with transaction(conn):
            conn.execute("INSERT INTO core.t SELECT range FROM range(100)")
        loaded = conn.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded ORDER BY 1").fetchall()
        print(json.dumps({{"rows": conn.execute("SELECT count(*) FROM core.t").fetchone()[0],
                           "loaded": [r[0] for r in loaded]}}))
        """
    )
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["rows"] == 100
    assert {"ducklake", "sqlite_scanner", "httpfs"} <= set(result["loaded"])
    assert not (tmp_path / "home" / ".duckdb").exists()


def test_the_sqlite_catalog_is_in_wal_mode(config):
    connect_warehouse(config).close()
    with sqlite3.connect(config.catalog.removeprefix("sqlite:")) as catalog:
        assert catalog.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def _hold_a_write(config, inside, release) -> None:
    conn = connect_warehouse(config)
    with transaction(conn):
        conn.execute("INSERT INTO core.t SELECT 2, range FROM range(500)")
        inside.set()
        release.wait(30)


def test_a_person_reads_the_last_commit_while_a_writer_holds_the_lock(config):
    conn = connect_warehouse(config)
    run_ddl(conn, *CREATE)
    with transaction(conn):
        conn.execute("INSERT INTO core.t SELECT 1, range FROM range(1000)")
    ctx = mp.get_context("spawn")
    inside, release = ctx.Event(), ctx.Event()
    writer = ctx.Process(target=_hold_a_write, args=(config, inside, release))
    writer.start()
    try:
        assert inside.wait(60)
        started = time.monotonic()
        with connect_warehouse(config, read_only=True) as reader:
            during = reader.execute("SELECT day, count(*) FROM core.t GROUP BY ALL ORDER BY 1").fetchall()
        assert time.monotonic() - started < 5  # not kept waiting by the writer's lock
        assert during == [(1, 1000)]
    finally:
        release.set()
        writer.join(30)
    assert writer.exitcode == 0
    with connect_warehouse(config, read_only=True) as reader:
        assert reader.execute("SELECT day, count(*) FROM core.t GROUP BY ALL ORDER BY 1").fetchall() == [
            (1, 1000),
            (2, 500),
        ]


def test_time_travel_to_a_recorded_snapshot(config):
    conn = connect_warehouse(config)
    run_ddl(conn, *CREATE)
    with transaction(conn):
        conn.execute("INSERT INTO core.t SELECT 1, range FROM range(10)")
    first = committed_snapshot(conn)
    with transaction(conn):
        conn.execute("DELETE FROM core.t")
        conn.execute("INSERT INTO core.t SELECT 2, range FROM range(20)")
    second = committed_snapshot(conn)
    assert second > first
    with transaction(conn):  # nothing changes: no snapshot, the last one stays the connection's
        conn.execute("DELETE FROM core.t WHERE day = 99")
    assert committed_snapshot(conn) == second
    with snapshot_read(conn) as now:
        assert now == second
        assert conn.execute(f"SELECT day, count(*) FROM core.t AT (VERSION => {first}) GROUP BY ALL").fetchall() == [
            (1, 10)
        ]
        assert conn.execute("SELECT day, count(*) FROM core.t GROUP BY ALL").fetchall() == [(2, 20)]


@pytest.mark.parametrize(
    "catalog, setting",
    [
        ("postgres:dbname=warehouse host=127.0.0.1 port={port} user=postgres", "ML_PLATFORM_CATALOG_URL"),
        ("mysql:warehouse", "ML_PLATFORM_CATALOG_URL"),
    ],
    ids=["postgres_refused", "unknown_kind"],
)
def test_a_catalog_that_can_not_be_opened_names_the_setting(tmp_path, catalog, setting):
    started = time.monotonic()
    with pytest.raises(WarehouseConfigError, match=setting):
        connect_warehouse(WarehouseConfig(catalog.format(port=free_port()), str(tmp_path / "data")))
    assert time.monotonic() - started < 15


def test_an_s3_endpoint_that_does_not_answer_names_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config = WarehouseConfig(f"sqlite:{tmp_path}/catalog.sqlite", "s3://nowhere/lake/warehouse/")
    started = time.monotonic()
    with pytest.raises(WarehouseConfigError, match=r"ML_PLATFORM_LAKE_URL=s3://nowhere.*unreachable"):
        connect_warehouse(config)
    assert time.monotonic() - started < 15


def test_a_missing_bucket_names_the_setting(tmp_path, s3_env):
    config = WarehouseConfig(f"sqlite:{tmp_path}/catalog.sqlite", f"s3://{s3_env}-missing/lake/warehouse/")
    with pytest.raises(WarehouseConfigError, match=r"ML_PLATFORM_LAKE_URL=.*the bucket does not exist"):
        connect_warehouse(config)


def test_a_catalog_made_for_another_lake_names_the_lake_setting(tmp_path, config):
    connect_warehouse(config).close()
    moved = WarehouseConfig(config.catalog_url, str(tmp_path / "another_lake" / "warehouse"))
    with pytest.raises(WarehouseConfigError, match="ML_PLATFORM_LAKE_URL.*does not match"):
        connect_warehouse(moved)


def test_reading_before_anything_was_loaded_says_so(tmp_path):
    with pytest.raises(WarehouseConfigError, match="no warehouse at .* yet"):
        connect_warehouse(embedded_config(tmp_path / "nothing"), read_only=True)
