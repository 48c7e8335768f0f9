"""Check the pandas baseline against the platform's reference build, column by column.

    .venv/bin/python -m benchmarks.verify_pandas_baseline --first 2013-01-01 --last 2013-01-31

Writes the inputs (daily landing CSVs, reference CSVs) under ``--workdir``, builds the
reference (the platform's lake, warehouse and features code on DuckDB, cached as
Parquet per range) and the pandas baseline, prints both stage timings and the
columns whose checksums differ, with a few differing rows for each. Exit code 1 on
any difference.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from benchmarks.checksum import compare, features_checksum

KEY = ["flight_date", "carrier", "flight", "origin", "sched_dep_time"]


def write_inputs(workdir: Path, first: dt.date, last: dt.date) -> tuple[Path, Path, Path]:
    """Landing files ``flights_YYYY-MM-DD.csv`` of the range, the reference CSVs, and weather.csv's path."""
    from ml_platform.devdata.reference_data import (
        REFERENCE_TABLES,
        flight_days,
        flights_csv_for_day,
        read_reference_table,
        weather_csv_path,
    )

    landing, reference = workdir / f"landing_{first}_{last}", workdir / "reference"
    landing.mkdir(parents=True, exist_ok=True)
    reference.mkdir(parents=True, exist_ok=True)
    for day in (d for d in flight_days() if first <= d <= last):
        path = landing / f"flights_{day}.csv"
        if not path.exists():
            path.write_bytes(flights_csv_for_day(day))
    for name in REFERENCE_TABLES:
        read_reference_table(name).write_csv(reference / f"{name}.csv")
    return landing, reference, weather_csv_path()


def reference_features(
    workdir: Path, first: dt.date, last: dt.date, horizon: int, *, fresh: bool = False
) -> tuple[pl.DataFrame, dict]:
    """The platform's features of the range (cached unless ``fresh``), and its stage seconds."""
    cache = workdir / f"reference_{first}_{last}_{horizon}.parquet"
    timings_file = cache.with_suffix(".json")
    if cache.exists() and not fresh:
        return pl.read_parquet(cache), json.loads(timings_file.read_text())
    import duckdb

    from ml_platform.devdata import offline_year as year
    from ml_platform.io.store import open_store
    from ml_platform.pipeline.features import TABLE, build_flight_features

    lake_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="reference_lake_"))
    try:
        conn = duckdb.connect()
        conn.execute("SET TimeZone = 'UTC'")
        timings, started = {}, time.perf_counter()
        year.build_year_lake(open_store(str(lake_dir)), first, last)
        timings["lake"], started = time.perf_counter() - started, time.perf_counter()
        year.load_warehouse(conn, str(lake_dir), first, last)
        timings["warehouse"], started = time.perf_counter() - started, time.perf_counter()
        build_flight_features(conn, first, last, horizon_minutes=horizon)
        timings["features"] = time.perf_counter() - started
        frame = conn.execute(f"SELECT * FROM {TABLE}").pl()
    finally:
        shutil.rmtree(lake_dir, ignore_errors=True)
    frame.write_parquet(cache)
    timings_file.write_text(json.dumps(timings))
    return frame, timings


def show_differences(ref: pl.DataFrame, got: pl.DataFrame, columns: list[str], rows: int = 5) -> None:
    """A few rows per differing column, joined on the flight key."""
    got = pl.from_pandas(got) if not isinstance(got, pl.DataFrame) else got
    got = got.with_columns(pl.col("flight_date").cast(pl.Date), pl.col("flight", "sched_dep_time").cast(pl.Int32))
    joined = ref.join(got, on=KEY, how="full", suffix="_pd", coalesce=True)
    for column in columns:
        if column.startswith("<") or column not in ref.columns or f"{column}_pd" not in joined.columns:
            print(f"  {column}: missing on one side")
            continue
        a, b = pl.col(column), pl.col(f"{column}_pd")
        if ref.schema[column].is_numeric() or ref.schema[column] == pl.Boolean:
            a, b = a.cast(pl.Float64), b.cast(pl.Float64, strict=False)
            bad = ((a - b).abs() > 1e-6) | (a.is_null() != b.fill_nan(None).is_null())
        else:
            bad = a.cast(pl.String) != b.cast(pl.String)
            bad = bad.fill_null(a.is_null() != b.is_null())
        diff = joined.filter(bad)
        print(f"  {column}: {diff.height} rows differ")
        print(diff.select(*KEY, column, f"{column}_pd").head(rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=dt.date.fromisoformat, default=dt.date(2013, 1, 1))
    parser.add_argument("--last", type=dt.date.fromisoformat, default=dt.date(2013, 1, 31))
    parser.add_argument("--horizon", type=int, default=60)
    parser.add_argument("--fresh", action="store_true", help="rebuild the reference even if cached")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "pandas_baseline_check")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    landing, reference, weather = write_inputs(args.workdir, args.first, args.last)
    ref, ref_timings = reference_features(args.workdir, args.first, args.last, args.horizon, fresh=args.fresh)
    print("reference seconds:", {k: round(v, 2) for k, v in ref_timings.items()})

    from benchmarks.pandas_baseline import build_features

    got, timings = build_features(landing, reference, weather, args.first, args.last, args.horizon)
    print("pandas seconds:   ", {k: round(v, 2) for k, v in timings.items()})
    a, b = features_checksum(ref), features_checksum(got)
    differ = compare(a, b)
    print(f"rows: reference {a['rows']}, pandas {b['rows']}; columns compared: {len(a['columns'])}")
    if not differ:
        print("checksums match on every column:", a["sha256"])
        return 0
    print("columns that differ:", differ)
    show_differences(ref, got, differ)
    return 1


if __name__ == "__main__":
    sys.exit(main())
