"""Where everything lives in the lake, relative to its root (a folder or ``s3://bucket/prefix``).

raw/<source>/date=YYYY-MM-DD/part-0.parquet       one file per source and New York day
raw/<table>/<table>.parquet                        the reference tables (airlines, airports, planes)
archive/<source>/date=YYYY-MM-DD/<sha256[:16]>_<name>   each landed file version, byte for byte
published/<table>/date=YYYY-MM-DD/part-0.parquet   warehouse tables for readers outside runs
training_sets/flight_features-<sha256[:16]>.parquet    immutable training snapshots
"""

from __future__ import annotations

import datetime as dt
import re

PART_FILE = "part-0.parquet"
RAW, PUBLISHED, ARCHIVE = "raw", "published", "archive"
TRAINING_SETS = "training_sets"
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def _name(name: str) -> str:
    """``name`` if it can be a folder of the lake (lower-case letters, digits, ``_``), else ValueError."""
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a lake folder name (must match {_NAME.pattern})")
    return name


def partition_dir(source: str, day: dt.date, zone: str = RAW) -> str:
    return f"{zone}/{_name(source)}/date={day.isoformat()}"


def partition_file(source: str, day: dt.date, zone: str = RAW) -> str:
    return f"{partition_dir(source, day, zone)}/{PART_FILE}"


def table_path(table: str) -> str:
    return f"{RAW}/{_name(table)}/{table}.parquet"


def archive_path(source: str, day: dt.date, name: str, version: str) -> str:
    return f"{ARCHIVE}/{_name(source)}/date={day.isoformat()}/{version[:16]}_{name}"


def snapshot_path(digest: str) -> str:
    """The training snapshot whose content has this sha256."""
    return f"{TRAINING_SETS}/flight_features-{digest[:16]}.parquet"


def day_files_glob(lake_url: str, source: str, zone: str = RAW) -> str:
    """Every day file of a source, for DuckDB: ``<lake>/raw/flights/date=*/part-0.parquet``."""
    return f"{lake_url.rstrip('/')}/{zone}/{_name(source)}/date=*/{PART_FILE}"


def table_url(lake_url: str, table: str) -> str:
    """A reference table's file, for DuckDB: ``<lake>/raw/planes/planes.parquet``."""
    return f"{lake_url.rstrip('/')}/{table_path(table)}"
