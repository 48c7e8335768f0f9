"""Warehouses for tests, in either profile, each made for one test (or session) and removed afterwards.

* embedded: a DuckLake with its SQLite catalog and data files in a temporary folder;
* production: a DuckLake with its catalog in a Postgres database of its own (``mlp_wh_<hex>``,
  dropped afterwards) and its data files in a bucket of its own on moto's S3 server on loopback.

``warehouse_config`` is the fixture, parametrized over both (ids ``embedded`` and
``postgres_s3``); the production one skips with the reason when Postgres is absent (and fails
under ML_PLATFORM_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from ml_platform.io.warehouse import WarehouseConfig, connect_warehouse, detach_warehouse
from ml_platform_tests.conftest import POSTGRES_URL, require_service

PROFILES = ("embedded", "postgres_s3")


def embedded_config(root: Path) -> WarehouseConfig:
    """A DuckLake under ``root``: ``catalog.sqlite`` and ``data/``."""
    return WarehouseConfig(f"sqlite:{root / 'catalog.sqlite'}", str(root / "data"))


def connect(config: WarehouseConfig) -> duckdb.DuckDBPyConnection:
    conn = connect_warehouse(config)
    conn.execute("SET enable_progress_bar = false")
    return conn


def _libpq(url) -> str:
    """A SQLAlchemy URL as a libpq keyword string (what DuckLake's postgres catalog takes)."""
    parts = {"dbname": url.database, "host": url.host, "port": url.port, "user": url.username}
    if url.password:
        parts["password"] = url.password
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new Postgres database, as a libpq string; dropped (connections closed) afterwards."""
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text("SELECT 1"))
    except Exception as e:  # noqa: BLE001 - any failure to connect means "not reachable"
        admin.dispose()
        require_service("PostgreSQL", f"{POSTGRES_URL}: {str(e).splitlines()[0]}")
    name = f"mlp_wh_{uuid.uuid4().hex[:12]}"
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield _libpq(sa.engine.make_url(POSTGRES_URL).set(database=name))
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def delete_bucket(bucket: str) -> None:
    import boto3

    s3 = boto3.resource("s3")
    s3.Bucket(bucket).objects.all().delete()
    s3.Bucket(bucket).delete()


@contextmanager
def production_config(bucket: str) -> Iterator[WarehouseConfig]:
    """A DuckLake with its catalog in a new Postgres database and its data in ``s3://bucket/warehouse/``
    (the AWS_* variables must point at the S3 server already); both removed afterwards."""
    with postgres_database() as libpq:
        config = WarehouseConfig(f"postgres:{libpq}", f"s3://{bucket}/warehouse/")
        try:
            yield config
        finally:
            detach_warehouse(config)


@pytest.fixture(params=PROFILES)
def warehouse_config(request, tmp_path: Path) -> Iterator[WarehouseConfig]:
    """A fresh warehouse in each profile (see the module docstring)."""
    if request.param == "embedded":
        config = embedded_config(tmp_path / "warehouse")
        yield config
        detach_warehouse(config)
        return
    # Postgres first: without it the test skips before a moto server is started for nothing.
    with postgres_database() as libpq:
        bucket = request.getfixturevalue("s3_env")
        config = WarehouseConfig(f"postgres:{libpq}", f"s3://{bucket}/warehouse/")
        try:
            yield config
        finally:
            detach_warehouse(config)
            delete_bucket(bucket)
