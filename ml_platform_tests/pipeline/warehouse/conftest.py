"""Fixtures: a real lake for the whole of 2013 (once per session) and small ones per test.

Warehouses are DuckLakes: the year's in the embedded profile, ``conn`` in both profiles (embedded;
catalog in Postgres with data on S3), see ``ml_platform_tests/warehouses.py``.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from ml_platform.io.store import Store, open_store
from ml_platform.pipeline.warehouse import (
    LoadResult,
    load_dims,
    load_fct_flights,
    load_staging_flights,
    load_staging_weather,
)
from ml_platform_tests.warehouses import connect, embedded_config, warehouse_config  # noqa: F401

from .lakes import write_flights_day, write_reference_tables, write_weather_days, write_year

YEAR = (dt.date(2013, 1, 1), dt.date(2013, 12, 31))
JAN1, JAN2, JAN3 = dt.date(2013, 1, 1), dt.date(2013, 1, 2), dt.date(2013, 1, 3)


@dataclass
class Warehouse:
    conn: duckdb.DuckDBPyConnection
    lake: str
    flights: LoadResult
    facts: LoadResult
    weather: LoadResult
    seconds: dict[str, float]

    def one(self, sql: str, params=None):
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if len(row) == 1 else row


@pytest.fixture(scope="session")
def year_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """All of 2013 ingested into a lake, then loaded into an embedded DuckLake (tests only read it)."""
    root = tmp_path_factory.mktemp("year")
    started = time.perf_counter()
    write_year(open_store(str(root / "lake")))
    lake_seconds = time.perf_counter() - started
    conn = connect(embedded_config(root / "warehouse"))
    lake = str(root / "lake")
    started = time.perf_counter()
    load_dims(conn, lake)
    dims_seconds = time.perf_counter() - started
    flights = load_staging_flights(conn, lake, *YEAR)
    facts = load_fct_flights(conn, *YEAR)
    weather = load_staging_weather(conn, lake, *YEAR)
    seconds = {
        "lake (test setup)": lake_seconds,
        "dims": dims_seconds,
        "staging.flights": flights.seconds,
        "core.fct_flights": facts.seconds,
        "staging.weather": weather.seconds,
    }
    print("\nfull-year warehouse load times (s):", {k: round(v, 2) for k, v in seconds.items()})
    yield Warehouse(conn, lake, flights, facts, weather, seconds)
    conn.close()


@pytest.fixture
def small_lake(tmp_path: Path) -> tuple[Store, str]:
    """Three real days (2013-01-01..03) of flights and weather plus the reference tables."""
    store = open_store(str(tmp_path / "lake"))
    for day in (JAN1, JAN2, JAN3):
        write_flights_day(store, day)
    write_weather_days(store, (JAN1, JAN2, JAN3))
    write_reference_tables(store)
    return store, str(tmp_path / "lake")


@pytest.fixture
def conn(warehouse_config):  # noqa: F811 - the fixture imported above
    """A fresh warehouse, in each profile."""
    c = connect(warehouse_config)
    yield c
    c.close()
