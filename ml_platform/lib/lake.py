"""The lake's layout: raw sources as Hive-partitioned Parquet, landed files archived as delivered.

    raw/<source>/date=YYYY-MM-DD/part-0.parquet   one file per source and day
    raw/<table>/<table>.parquet                    unpartitioned reference tables
    published/<table>/date=YYYY-MM-DD/part-0.parquet  warehouse tables for readers outside runs
    training_sets/<name>-<sha256[:16]>.parquet     immutable training snapshots
    archive/<source>/date=YYYY-MM-DD/<sha256[:16]>_<name>   landed bytes, every version
"""

from __future__ import annotations

import datetime as dt
import io

import polars as pl

from ml_platform.lib.storage import Store

PART_FILE = "part-0.parquet"


def partition_dir(source: str, day: dt.date, zone: str = "raw") -> str:
    return f"{zone}/{source}/date={day.isoformat()}"


def table_path(table: str) -> str:
    return f"raw/{table}/{table}.parquet"


def archive_path(source: str, day: dt.date, name: str, version: str) -> str:
    return f"archive/{source}/date={day.isoformat()}/{version[:16]}_{name}"


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd", statistics=True)
    return buf.getvalue()


def write_table(store: Store, path: str, frame: pl.DataFrame) -> None:
    """Write one Parquet file atomically, replacing any previous version."""
    store.write_bytes(path, parquet_bytes(frame))


def write_partition(
    store: Store, source: str, day: dt.date, frame: pl.DataFrame, *, zone: str = "raw"
) -> str:
    """Replace the day's partition with ``frame``: the new file lands whole, then any stale file goes."""
    folder = partition_dir(source, day, zone)
    path = f"{folder}/{PART_FILE}"
    write_table(store, path, frame)
    for stale in store.list(folder):
        if stale.path != path:
            store.delete(stale.path)
    return path


def read_partition(store: Store, source: str, day: dt.date, *, zone: str = "raw") -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(store.read_bytes(f"{partition_dir(source, day, zone)}/{PART_FILE}")))


def publish_days(store: Store, table: str, frame: pl.DataFrame, days: list[dt.date], date_column: str) -> None:
    """Publish each day of ``frame`` as its own partition under ``published/`` (empty days too)."""
    for day in days:
        rows = frame.filter(pl.col(date_column) == day)
        write_partition(store, table, day, rows, zone="published")


def archive(store: Store, source: str, day: dt.date, name: str, version: str, data: bytes) -> str:
    """Keep the landed bytes as delivered; a version already archived is not written again."""
    path = archive_path(source, day, name, version)
    if not store.exists(path):
        store.write_bytes(path, data)
    return path
