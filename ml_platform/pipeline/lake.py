"""Writing the lake: Parquet files replaced whole, day partitions, landed files archived as delivered.

Where each thing goes is ``ml_platform.domain.lake_layout``; every write is atomic (the store's).
"""

from __future__ import annotations

import datetime as dt
import io

import polars as pl

from ml_platform.domain.lake_layout import PUBLISHED, RAW, archive_path, partition_dir, partition_file
from ml_platform.io.store import Store


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd", statistics=True)
    return buf.getvalue()


def write_table(store: Store, path: str, frame: pl.DataFrame) -> None:
    """Write one Parquet file atomically, replacing any previous version."""
    store.write_bytes(path, parquet_bytes(frame))


def write_partition(store: Store, source: str, day: dt.date, frame: pl.DataFrame, *, zone: str = RAW) -> str:
    """Replace the day's partition with ``frame``: the new file lands whole, then any stale file goes."""
    folder, path = partition_dir(source, day, zone), partition_file(source, day, zone)
    write_table(store, path, frame)
    for stale in store.list(folder):
        if stale.path != path:
            store.delete(stale.path)
    return path


def read_partition(store: Store, source: str, day: dt.date, *, zone: str = RAW) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(store.read_bytes(partition_file(source, day, zone))))


def read_published_days(store: Store, table: str, days: list[dt.date]) -> pl.DataFrame:
    """The published partitions of ``days`` that exist, as one frame (empty when none does)."""
    frames = [
        read_partition(store, table, day, zone=PUBLISHED)
        for day in days
        if store.exists(partition_file(table, day, PUBLISHED))
    ]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def publish_days(store: Store, table: str, frame: pl.DataFrame, days: list[dt.date], date_column: str) -> None:
    """Publish each day of ``frame`` as its own partition under ``published/`` (empty days too)."""
    for day in days:
        rows = frame.filter(pl.col(date_column) == day)
        write_partition(store, table, day, rows, zone=PUBLISHED)


def archive(store: Store, source: str, day: dt.date, name: str, version: str, data: bytes) -> str:
    """Keep the landed bytes as delivered; a version already archived is not written again."""
    path = archive_path(source, day, name, version)
    if not store.exists(path):
        store.write_bytes(path, data)
    return path
