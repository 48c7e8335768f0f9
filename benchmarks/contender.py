"""One contender per subprocess, so that each peak memory is its own.

    python -m benchmarks.contender {a,b,c} --scale N --inputs DIR --work DIR --result FILE [--no-train]

runs one contender in this process and writes its measurements as JSON: the stages
(seconds, rows, rows/s, peak tree RSS), the feature checksum (``benchmarks.checksum``)
computed after the timed stages, and anything the contender reports besides; or
``skipped`` with the reason (the pandas baseline not importable), or ``error``.
``spawn(...)`` is the parent's side: it starts that subprocess and stops it (and
reports why) if the machine runs short of memory, which others share.

``--duckdb-memory-limit`` caps DuckDB's buffer memory in (a), (b) and the anchor (e) alike (DuckDB's
own default is 80% of the machine's RAM).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from benchmarks.data import FIRST_DAY, LAST_DAY, ensure_inputs
from benchmarks.measure import Stopwatch, progress, run_guarded
from ml_platform.domain.features import KEY_COLUMNS
from ml_platform.io.warehouse import WarehouseConfig, connect_warehouse

NAMES = {"a": "platform", "b": "duckdb script", "c": "pandas", "d": "duckdb script on DuckLake"}
NAMES["e"] = "independent DuckDB anchor"  # benchmarks/anchor.py: the lower bound, written apart
DATA_STAGES = ("lake", "warehouse", "features")


def _pandas(inputs, work: Path, watch: Stopwatch):
    """(c): the other helper's pandas baseline; its own stage times, our total peak memory."""
    from benchmarks.pandas_baseline import build_features

    with watch.stage("lake..features", rows=inputs.flights):
        frame, seconds = build_features(
            inputs.landing_dir,
            inputs.reference_dir,
            inputs.weather_csv,
            FIRST_DAY,
            LAST_DAY,
            horizon_minutes=60,
            progress=lambda message: progress(f"{watch.label}: {message}"),
        )
    return frame, {"stage_seconds": {k: float(v) for k, v in seconds.items()}}


def checksum_by_columns(read: Callable[[list[str]], Any], columns: list[str], group: int = 8) -> dict:
    """``features_checksum`` computed a few columns at a time (each group with the flight key), then merged.

    The flight key is unique, so every group sorts its rows alike and each column's digest,
    and the total, are those of ``features_checksum`` on the whole frame; memory stays at
    one group's worth (the whole frame as text would take ~4 GB per 1x year).
    """
    from benchmarks.checksum import features_checksum

    keys = [c for c in KEY_COLUMNS if c in columns]
    others = [c for c in columns if c not in keys] or keys
    digests, rows = {}, 0
    for i in range(0, len(others), group):
        part = features_checksum(read(list(dict.fromkeys([*keys, *others[i : i + group]]))))
        digests.update(part["columns"])
        rows = part["rows"]
    total = hashlib.sha256(json.dumps({"rows": rows, "columns": digests}, sort_keys=True).encode()).hexdigest()
    return {"rows": rows, "sha256": total, "columns": dict(sorted(digests.items()))}


def table_checksum(warehouse: Path | WarehouseConfig) -> dict:
    """The checksum of ``features.flight_features`` in a warehouse (a DuckDB file or a DuckLake), column group by group."""
    opened = (
        duckdb.connect(str(warehouse), read_only=True)
        if isinstance(warehouse, Path)
        else connect_warehouse(warehouse, read_only=True)
    )
    with opened as conn:
        columns = [row[0] for row in conn.execute("DESCRIBE features.flight_features").fetchall()]
        select = "SELECT {} FROM features.flight_features"
        return checksum_by_columns(
            lambda cols: conn.execute(select.format(", ".join(f'"{c}"' for c in cols))).pl(), columns
        )


def run(which: str, scale: int, inputs_root: Path, work: Path, train: bool, duckdb_memory_limit: str | None) -> dict:
    inputs = ensure_inputs(inputs_root, scale, progress=lambda _: None)  # written by the parent
    watch = Stopwatch(f"x{scale} ({which}) {NAMES[which]}")
    work.mkdir(parents=True, exist_ok=True)
    if which == "a":
        from benchmarks import platform_run

        warehouse, facts = platform_run.run(inputs, work, watch, train=train, duckdb_memory_limit=duckdb_memory_limit)
        if not train:
            facts["skipped_stages"] = {
                "training": "not at this scale (--train-up-to)",
                "predictions": "not at this scale (--train-up-to)",
            }
    elif which in ("b", "d"):
        from benchmarks import duckdb_script

        warehouse = duckdb_script.run(
            inputs, work, watch, duckdb_memory_limit=duckdb_memory_limit, ducklake=which == "d"
        )
        facts = {}
    elif which == "e":
        from benchmarks import anchor

        warehouse, facts = anchor.run(inputs, work, watch, duckdb_memory_limit=duckdb_memory_limit), {}
    else:
        frame, facts = _pandas(inputs, work, watch)
    measured = watch.results()
    if which == "c":  # the baseline times its own stages; the peak covers all of them
        (whole,) = measured["stages"]
        measured["stages"] = [
            {
                "stage": name,
                "seconds": s,
                "rows": inputs.flights,
                "rows_per_second": inputs.flights / s if s else None,
                "peak_rss_bytes": None,
            }
            for name, s in facts.pop("stage_seconds").items()
        ]
        measured["peak_rss_bytes"] = whole["peak_rss_bytes"]
        measured["wall_seconds"] = whole["seconds"]
    else:
        measured["peak_rss_bytes"] = max(s["peak_rss_bytes"] for s in measured["stages"])
    started = time.perf_counter()
    if which == "c":
        checksum = checksum_by_columns(lambda cols: frame[cols], list(frame.columns))
        del frame
    else:
        checksum = table_checksum(warehouse)
    progress(
        f"{watch.label}: {checksum['rows']:,} feature rows, checksum {checksum['sha256'][:12]} "
        f"({time.perf_counter() - started:.1f}s)"
    )
    return {
        "contender": which,
        "name": NAMES[which],
        "scale": scale,
        "flights": inputs.flights,
        **measured,
        **facts,
        "checksum": checksum,
    }


def spawn(
    which: str,
    scale: int,
    inputs_root: Path,
    work: Path,
    *,
    train: bool,
    duckdb_memory_limit: str | None,
    min_available_gb: float,
) -> dict:
    """Run a contender in a subprocess (``run_guarded``) and return its result, or why there is none."""
    result_file = work.parent / f"{work.name}.json"
    result_file.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.contender",
        which,
        "--scale",
        str(scale),
        "--inputs",
        str(inputs_root),
        "--work",
        str(work),
        "--result",
        str(result_file),
    ]
    if not train:
        cmd.append("--no-train")
    if duckdb_memory_limit:
        cmd += ["--duckdb-memory-limit", duckdb_memory_limit]
    log = work.parent / f"{work.name}.log"
    run = run_guarded(cmd, log, min_available_gb)
    head = {"contender": which, "name": NAMES[which], "scale": scale}
    if run.problem or not result_file.exists():
        reason = run.problem or f"exited with code {run.returncode} without a result"
        progress(f"x{scale} ({which}) {NAMES[which]}: {reason}; log {log}:\n{run.log_tail}")
        return {**head, "error": reason, "process_tree_peak_rss_bytes": run.peak_rss_bytes}
    result = json.loads(result_file.read_text())
    result["process_tree_peak_rss_bytes"] = run.peak_rss_bytes  # seen from outside: setup and checksum included
    result["log"] = str(log)
    if "error" in result:
        progress(f"x{scale} ({which}) {NAMES[which]} failed: {result['error']}; log {log}:\n{run.log_tail}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.contender", description=__doc__)
    parser.add_argument("which", choices=sorted(NAMES))
    parser.add_argument("--scale", type=int, required=True)
    parser.add_argument("--inputs", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--no-train", action="store_true", help="(a) stops after the features")
    parser.add_argument("--duckdb-memory-limit", help="DuckDB memory_limit for (a) and (b), e.g. 4GB")
    args = parser.parse_args(argv)
    try:
        result = run(args.which, args.scale, args.inputs, args.work, not args.no_train, args.duckdb_memory_limit)
    except ImportError as e:
        if args.which != "c" or "pandas_baseline" not in str(e):
            raise
        result = {"contender": "c", "name": NAMES["c"], "scale": args.scale, "skipped": f"{e}"}
        progress(f"x{args.scale} (c) pandas: skipped ({e})")
    except Exception as e:  # noqa: BLE001 - any failure becomes the result, and the run fails
        traceback.print_exc()
        result = {
            "contender": args.which,
            "name": NAMES[args.which],
            "scale": args.scale,
            "error": f"{type(e).__name__}: {e}",
        }
    args.result.write_text(json.dumps(result, indent=2, default=str))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    raise SystemExit(main())
