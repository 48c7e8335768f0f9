"""Check the independent DuckDB anchor (d) against the platform's features, column by column.

    .venv/bin/python -m benchmarks.verify_anchor --first 2013-02-01 --last 2013-02-12

The same inputs and reference as ``verify_pandas_baseline`` (the platform's lake, warehouse
and features code on DuckDB, cached as Parquet per range): prints both stage timings, the
checksum (``benchmarks.checksum``) and the columns that differ, with a few differing rows
for each. Exit code 1 on any difference.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

from benchmarks.checksum import compare, features_checksum
from benchmarks.verify_pandas_baseline import reference_features, show_differences, write_inputs


def verify(workdir: Path, first: dt.date, last: dt.date, horizon: int = 60, *, fresh: bool = False) -> dict:
    """``{"rows", "sha256", "differ": [columns], "seconds": {...}, "reference_seconds": {...}}`` for [first, last]."""
    from benchmarks.anchor import build_features

    landing, reference, weather = write_inputs(workdir, first, last)
    ref, ref_seconds = reference_features(workdir, first, last, horizon, fresh=fresh)
    got, seconds = build_features(landing, reference, weather, first, last, horizon, progress=lambda *_: None)
    expected, actual = features_checksum(ref), features_checksum(got)
    return {
        "rows": (expected["rows"], actual["rows"]),
        "sha256": (expected["sha256"], actual["sha256"]),
        "columns": len(expected["columns"]),
        "differ": compare(expected, actual),
        "seconds": seconds,
        "reference_seconds": ref_seconds,
        "frames": (ref, got),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=dt.date.fromisoformat, default=dt.date(2013, 2, 1))
    parser.add_argument("--last", type=dt.date.fromisoformat, default=dt.date(2013, 2, 12))
    parser.add_argument("--horizon", type=int, default=60)
    parser.add_argument("--fresh", action="store_true", help="rebuild the reference even if cached")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "anchor_check")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    result = verify(args.workdir, args.first, args.last, args.horizon, fresh=args.fresh)
    print("reference seconds:", {k: round(v, 2) for k, v in result["reference_seconds"].items()})
    print("anchor seconds:   ", {k: round(v, 2) for k, v in result["seconds"].items()})
    (ref_rows, rows), (ref_sha, sha) = result["rows"], result["sha256"]
    print(f"rows: reference {ref_rows}, anchor {rows}; columns compared: {result['columns']}")
    if not result["differ"]:
        print("checksums match on every column:", sha)
        return 0
    print(f"checksums: reference {ref_sha}, anchor {sha}; columns that differ:", result["differ"])
    show_differences(*result["frames"], result["differ"])
    return 1


if __name__ == "__main__":
    sys.exit(main())
