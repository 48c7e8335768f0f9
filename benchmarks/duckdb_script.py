"""(b) The lower bound: the platform's lake, warehouse and feature work as one bare script.

No Dagster, no checks, no metadata, no published copies: the platform's own pure
functions (``ml_platform.pipeline``) over the scaled landing files, the reference CSVs and
the weather CSV, with one DuckDB connection. What is left is the work itself:
parse and archive each landed file, write the lake's Parquet, load the warehouse in
one range per table, and build the features in one statement.

(b) writes a DuckDB file, the round-1 warehouse; (d) is the same script on the platform's
DuckLake (embedded: SQLite catalog, Parquet under the lake), so (d)/(b) is what DuckLake costs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from benchmarks.data import FIRST_DAY, LAST_DAY, Inputs, read_reference_csv
from benchmarks.measure import Stopwatch
from ml_platform.devdata.offline_year import load_warehouse, read_weather_csv, write_weather_days
from ml_platform.devdata.reference_data import REFERENCE_TABLES
from ml_platform.domain import lake_layout
from ml_platform.io.store import open_store, sha256
from ml_platform.io.warehouse import WarehouseConfig, connect_warehouse
from ml_platform.pipeline import lake
from ml_platform.pipeline.features import build_flight_features
from ml_platform.pipeline.landing import landing_date, parse_flights_csv

HORIZON_MINUTES = 60


def build_lake(inputs: Inputs, lake_dir: Path, first: dt.date, last: dt.date) -> None:
    """Every landed day parsed, archived and written as a partition; weather and reference tables too."""
    store = open_store(str(lake_dir))
    days = []
    for path in sorted(inputs.landing_dir.glob("flights_*.csv")):
        day = landing_date(path.name)
        if not first <= day <= last:
            continue
        data = path.read_bytes()
        lake.archive(store, "flights", day, path.name, sha256(data), data)
        lake.write_partition(store, "flights", day, parse_flights_csv(path.name, data))
        days.append(day)
    write_weather_days(store, days, read_weather_csv(inputs.weather_csv, "file://" + str(inputs.weather_csv)))
    for name in REFERENCE_TABLES:
        frame = read_reference_csv(inputs.reference_dir / f"{name}.csv")
        lake.write_table(store, lake_layout.table_path(name), frame)


def run(
    inputs: Inputs,
    work: Path,
    watch: Stopwatch,
    *,
    duckdb_memory_limit: str | None = None,
    first: dt.date = FIRST_DAY,
    last: dt.date = LAST_DAY,
    ducklake: bool = False,
) -> Path | WarehouseConfig:
    """Lake, warehouse and features of [first, last]; returns the warehouse (a DuckDB file, or the DuckLake)."""
    lake_dir = work / "lake"
    with watch.stage("lake", rows=inputs.flights):
        build_lake(inputs, lake_dir, first, last)
    if ducklake:
        warehouse = WarehouseConfig(
            f"sqlite:{work / 'warehouse' / 'catalog.sqlite'}", str(lake_dir / "warehouse"), duckdb_memory_limit or ""
        )
        conn = connect_warehouse(warehouse)
    else:
        warehouse = work / "warehouse.duckdb"
        conn = duckdb.connect(
            str(warehouse), config={"memory_limit": duckdb_memory_limit} if duckdb_memory_limit else {}
        )
        conn.execute("SET TimeZone = 'UTC'")  # as the platform's warehouse connections
    with conn:
        with watch.stage("warehouse", rows=inputs.flights):
            load_warehouse(conn, str(lake_dir), first, last)
        with watch.stage("features", rows=inputs.flights):
            build_flight_features(conn, first, last, horizon_minutes=HORIZON_MINUTES)
    return warehouse
