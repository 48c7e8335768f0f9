"""The real 2013 year laid out as the platform would have ingested it, without Dagster.

Used where a whole year is needed at once (drift calibration, the model quality
protocol, benchmarks): every day's flights CSV parsed as ingestion parses it, the
weather as the API serves it, the reference tables as the operational database
holds them, then loaded into a DuckDB warehouse by the warehouse's own code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import duckdb
import polars as pl

from ml_platform.devdata.reference_data import (
    REFERENCE_TABLES,
    flight_days,
    flights_csv_for_day,
    read_reference_table,
    weather_csv_path,
)
from ml_platform.domain import lake_layout
from ml_platform.domain.calendar import FIRST_DAY
from ml_platform.domain.weather import RAW_WEATHER_SCHEMA
from ml_platform.io.store import Store, open_store
from ml_platform.pipeline import lake
from ml_platform.pipeline.landing import parse_flights_csv
from ml_platform.pipeline.warehouse import load_dims, load_fct_flights, load_staging_flights, load_staging_weather

LAST_DAY = dt.date(2013, 12, 31)
FETCHED_AT = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def read_weather_csv(path: Path, source_url: str = "http://127.0.0.1/weather") -> pl.DataFrame:
    """A weather CSV with the lake's columns and types, plus ``_day`` (its New York date)."""
    w = pl.read_csv(path, null_values="NA", infer_schema_length=None)
    w = w.select(list(RAW_WEATHER_SCHEMA)).cast(RAW_WEATHER_SCHEMA)
    return w.with_columns(
        pl.lit(FETCHED_AT).alias("_fetched_at"),
        pl.lit(source_url).alias("_source_url"),
        pl.date(pl.col("year"), pl.col("month"), pl.col("day")).alias("_day"),
    )


@cache
def weather_frame() -> pl.DataFrame:
    """The real weather.csv as the lake holds it."""
    return read_weather_csv(weather_csv_path())


def write_weather_days(store: Store, days: Iterable[dt.date], frame: pl.DataFrame | None = None) -> None:
    frame = weather_frame() if frame is None else frame
    for (day,), part in frame.filter(pl.col("_day").is_in(list(set(days)))).group_by(["_day"]):
        lake.write_partition(store, "weather", day, part.drop("_day").sort("time_hour", "origin"))


def write_reference_tables(store: Store, **replacements: pl.DataFrame) -> None:
    for name in REFERENCE_TABLES:
        frame = replacements.get(name)
        lake.write_table(
            store, lake_layout.table_path(name), frame if frame is not None else read_reference_table(name)
        )


def build_year_lake(store: Store, first: dt.date = FIRST_DAY, last: dt.date = LAST_DAY) -> None:
    """Flights, weather and reference tables of [first, last] in the lake, as ingestion writes them."""
    days = [d for d in flight_days() if first <= d <= last]
    for day in days:
        name = f"flights_{day}.csv"
        lake.write_partition(store, "flights", day, parse_flights_csv(name, flights_csv_for_day(day)))
    write_weather_days(store, days)
    write_reference_tables(store)


def build_year_warehouse(
    conn: duckdb.DuckDBPyConnection, lake_dir: Path, first: dt.date = FIRST_DAY, last: dt.date = LAST_DAY
) -> None:
    """A lake in ``lake_dir`` and the warehouse loaded from it, one range load per table."""
    build_year_lake(open_store(str(lake_dir)), first, last)
    load_warehouse(conn, str(lake_dir), first, last)


def load_warehouse(conn: duckdb.DuckDBPyConnection, lake_url: str, first: dt.date, last: dt.date) -> None:
    """Every warehouse table from the lake at ``lake_url``, one range load per table."""
    load_dims(conn, lake_url)
    load_staging_flights(conn, lake_url, first, last)
    load_fct_flights(conn, first, last)
    load_staging_weather(conn, lake_url, first, last)
