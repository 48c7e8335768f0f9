"""Training-set snapshots: a window of labelled feature rows, frozen in the lake under its content hash.

A snapshot never changes once written: the same rows give the same file and the
same hash, so a retrain on unchanged data is recognisable, and a model's dataset
can always be found again. ``training_sets/latest.json`` names the newest snapshot;
``training_sets/reference.json`` (written when a model is promoted) names the one
the current champion was trained on, which drift is measured against.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass

import duckdb
import polars as pl

from ml_platform.domain.lake_layout import TRAINING_SETS, snapshot_path
from ml_platform.io.store import Store, sha256
from ml_platform.pipeline import features as ft
from ml_platform.pipeline.lake import parquet_bytes

LATEST = f"{TRAINING_SETS}/latest.json"
REFERENCE = f"{TRAINING_SETS}/reference.json"


@dataclass(frozen=True)
class Snapshot:
    path: str
    digest: str
    rows: int
    first_day: dt.date | None
    last_day: dt.date | None
    delayed_share: float


def select(conn: duckdb.DuckDBPyConnection, first_day: str | None, last_day: str | None) -> pl.DataFrame:
    """Labelled feature rows of [first_day, last_day] (either end open), in key order."""
    where = [f"{ft.LABEL} IS NOT NULL"]
    params = {}
    if first_day:
        where.append("flight_date >= $first")
        params["first"] = dt.date.fromisoformat(first_day)
    if last_day:
        where.append("flight_date <= $last")
        params["last"] = dt.date.fromisoformat(last_day)
    order = ", ".join(ft.KEY_COLUMNS)
    sql = f"SELECT * FROM {ft.TABLE} WHERE {' AND '.join(where)} ORDER BY {order}"
    return conn.execute(sql, params or None).pl()


def write_snapshot(store: Store, frame: pl.DataFrame) -> Snapshot:
    """Write the frame once under its content hash and point ``latest.json`` at it."""
    if frame.is_empty():
        raise ValueError("the training window holds no labelled flights: land and build some days first")
    data = parquet_bytes(frame)
    digest = sha256(data)
    path = snapshot_path(digest)
    if not store.exists(path):
        store.write_bytes(path, data)
    days = frame["flight_date"]
    snapshot = Snapshot(path, digest, frame.height, days.min(), days.max(), float(frame[ft.LABEL].mean()))
    store.write_bytes(LATEST, json.dumps({"path": path, "sha256": digest}).encode())
    return snapshot


def read_snapshot(store: Store, path: str) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(store.read_bytes(path)))


def mark_reference(store: Store, path: str) -> None:
    """Record that the current champion was trained on the snapshot at ``path``."""
    store.write_bytes(REFERENCE, json.dumps({"path": path}).encode())


def reference_snapshot(store: Store) -> str | None:
    """The champion's snapshot, else the newest one, else None."""
    for pointer in (REFERENCE, LATEST):
        if store.exists(pointer):
            return json.loads(store.read_bytes(pointer))["path"]
    return None
