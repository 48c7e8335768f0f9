"""An order- and dtype-independent checksum of a flight-features frame (polars or pandas).

    features_checksum(frame)  # {"rows": n, "sha256": "...", "columns": {column: sha256}}
    compare(a, b)             # the columns whose checksums differ

Each column is normalised to one type per kind before hashing, so that the platform's polars
frame, a DuckDB result and a pandas frame of the same values hash alike:

- rows are sorted by the flight key (``KEY_COLUMNS``), then by every column;
- numbers and booleans become Float64 rounded to 6 decimals (True = 1, -0.0 = 0.0);
  NaN and null are the same missing value;
- timestamps become epoch microseconds in UTC (naive timestamps are taken as UTC);
- dates become days since 1970-01-01; strings stay text.

A column's kind comes from ``ml_platform.domain.features.COLUMNS`` when the
name is known there (so a pandas ``datetime64`` ``flight_date`` still hashes as
a date), otherwise from its dtype.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import polars as pl

from ml_platform.domain.features import COLUMNS, KEY_COLUMNS

NULL = r"\N"


def _to_polars(frame: Any) -> pl.DataFrame:
    if isinstance(frame, pl.DataFrame):
        return frame
    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    return pl.from_pandas(frame)  # pandas (any dtype backend)


def _kind(name: str, dtype: pl.DataType) -> str:
    known = COLUMNS.get(name)
    if known is not None:
        if known == "DATE":
            return "date"
        if known.startswith("TIMESTAMP"):
            return "timestamp"
        return "text" if known == "VARCHAR" else "number"
    if dtype == pl.Date:
        return "date"
    if isinstance(dtype, pl.Datetime):
        return "timestamp"
    if dtype.is_numeric() or dtype == pl.Boolean:
        return "number"
    return "text"


def _normalised(series: pl.Series) -> pl.Series:
    """The column in one canonical type per kind: Int32 days, Int64 microseconds, Float64, or String."""
    kind, s = _kind(series.name, series.dtype), series
    if kind == "date":
        if isinstance(s.dtype, pl.Datetime):
            s = s.dt.date()
        elif s.dtype != pl.Date:
            s = s.cast(pl.String).str.slice(0, 10).str.to_date()
        out = s.cast(pl.Int32)
    elif kind == "timestamp":
        if s.dtype == pl.String or s.dtype == pl.Object:
            s = s.cast(pl.String).str.to_datetime(time_zone="UTC")
        if s.dtype.time_zone is None:  # type: ignore[union-attr]
            s = s.dt.replace_time_zone("UTC")
        out = s.dt.convert_time_zone("UTC").dt.epoch("us")
    elif kind == "number":
        f = s.cast(pl.Float64, strict=False)
        out = f.fill_nan(None).round(6) + 0.0  # + 0.0 turns -0.0 into 0.0
    else:
        out = s.cast(pl.String)
    return out.alias(series.name)


def _digest(series: pl.Series) -> str:
    """sha256 of the values in row order: text joined by newlines (nulls as ``\\N``), anything else
    as its null mask, then its values' bytes (nulls as 0)."""
    if series.dtype == pl.String:
        return _sha256(series.fill_null(NULL).str.join("\n").item() if len(series) else "")
    digest = hashlib.sha256(series.is_null().to_numpy().tobytes())
    digest.update(series.fill_null(0).to_numpy().tobytes())
    return digest.hexdigest()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def features_checksum(frame: Any) -> dict:
    """``{"rows", "sha256", "columns": {column: sha256}}`` of ``frame``, independent of row order and dtypes."""
    df = _to_polars(frame)
    norm = pl.DataFrame([_normalised(df.get_column(c)) for c in df.columns])
    keys = [c for c in KEY_COLUMNS if c in norm.columns]
    norm = norm.sort([*keys, *sorted(c for c in norm.columns if c not in keys)])
    columns = {c: _digest(norm.get_column(c)) for c in sorted(norm.columns)}
    total = _sha256(json.dumps({"rows": norm.height, "columns": columns}, sort_keys=True))
    return {"rows": norm.height, "sha256": total, "columns": columns}


def compare(a: dict, b: dict) -> list[str]:
    """The columns whose checksums differ or that only one side has (``"<rows>"`` first if the counts differ)."""
    diff = ["<rows>"] if a["rows"] != b["rows"] else []
    names = sorted(set(a["columns"]) | set(b["columns"]))
    return diff + [c for c in names if a["columns"].get(c) != b["columns"].get(c)]
