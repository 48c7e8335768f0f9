"""``make bench`` / ``python -m benchmarks``: the platform against a bare DuckDB script and pandas.

For each scale (the real 2013 year replicated N times), each contender runs in its own
subprocess on the same landing files: (a) the platform through Dagster, (b) the bare
DuckDB script on a DuckDB file, (c) the pandas baseline, (d) the script of (b) on the DuckLake
warehouse ((d)/(b): what DuckLake costs), (e) the independent anchor (``benchmarks/anchor.py``:
a minimal DuckDB script written apart from the platform's SQL, the lower bound).
Then, on the 1x year, the incremental cost of one
new day after 30, 180 and 365 days of history, a backfill of 30 one-day runs with 1, 2 and 4
runs at once (``benchmarks.concurrency``), the production profile's backfill with 1 and 2 Celery
workers, the stream's produce-to-lake latency and the prediction service against its floor and
``mlflow models serve`` (``benchmarks.online``), and the sensor latency under ``dagster dev``. Writes ``benchmarks/results/<date>.json`` and ``<date>.md``, and exits
non-zero if a contender failed or the contenders' features differ.

    python -m benchmarks                      # scales 1 and 10, everything
    python -m benchmarks --scale 1 --only b   # the lower bound alone, quickly
    python -m benchmarks --scale 1 --only b d --skip-sensor   # DuckLake against the DuckDB file at x1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import time
from importlib.metadata import version
from pathlib import Path

import psutil

from benchmarks import report, sensor_latency
from benchmarks.contender import NAMES, spawn
from benchmarks.data import ensure_inputs
from benchmarks.measure import T0_ENV, progress, run_guarded
from ml_platform.settings import REPO_ROOT

DEFAULT_WORK = REPO_ROOT / ".ml_platform" / "bench"  # git-ignored
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"


def _machine() -> dict:
    packages = ("dagster", "duckdb", "polars", "pandas", "scikit-learn", "mlflow")
    return {
        "cpus": os.cpu_count(),
        "memory_gb": psutil.virtual_memory().total / 2**30,
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "versions": {p: version(p) for p in packages},
    }


def _incremental(work: Path, inputs_root: Path, min_free_gb: float) -> dict:
    result = work / "incremental.json"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.incremental",
        "--inputs",
        str(inputs_root),
        "--work",
        str(work / "incremental"),
        "--result",
        str(result),
    ]
    run = run_guarded(cmd, work / "incremental.log", min_free_gb)
    if run.problem or not result.exists():
        reason = run.problem or f"exited with code {run.returncode}"
        progress(f"incremental: {reason}; log {work / 'incremental.log'}:\n{run.log_tail}")
        return {"error": reason}
    return json.loads(result.read_text())


def _concurrency(work: Path, inputs_root: Path, min_free_gb: float) -> dict:
    result = work / "concurrency.json"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.concurrency",
        "--inputs",
        str(inputs_root),
        "--work",
        str(work / "concurrency"),
        "--result",
        str(result),
    ]
    run = run_guarded(cmd, work / "concurrency.log", min_free_gb)
    if run.problem or not result.exists():
        reason = run.problem or f"exited with code {run.returncode}"
        progress(f"concurrency: {reason}; log {work / 'concurrency.log'}:\n{run.log_tail}")
        return {"error": reason}
    return json.loads(result.read_text())


def _part(module: str, work: Path, min_free_gb: float) -> dict:
    """``python -m benchmarks.<module> --work ... --result ...`` under the memory guard; its result."""
    result = work / f"{module}.json"
    cmd = [sys.executable, "-m", f"benchmarks.{module}", "--work", str(work / module), "--result", str(result)]
    run = run_guarded(cmd, work / f"{module}.log", min_free_gb)
    if not result.exists():
        reason = run.problem or f"exited with code {run.returncode}"
        progress(f"{module}: {reason}; log {work / f'{module}.log'}:\n{run.log_tail}")
        return {"error": reason}
    return json.loads(result.read_text())


def _sensor(work: Path) -> dict:
    try:
        return sensor_latency.run(work / "sensor")
    except Exception as e:  # noqa: BLE001 - reported, and the run fails at the end
        progress(f"sensor: FAILED {type(e).__name__}: {e}")
        return {"error": f"{type(e).__name__}: {e}", "log": str(work / "sensor" / "up.log")}


def _latest_results(out: Path) -> Path | None:
    """The results file of the most recent earlier run in ``out``, if any."""
    runs = [(json.loads(p.read_text()).get("started_at") or "", p) for p in out.glob("*.json")]
    return max(runs)[1] if runs else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=int, nargs="+", default=[1, 10], help="scale factors (default: 1 10)")
    parser.add_argument("--only", nargs="+", choices=sorted(NAMES), help="run only these contenders")
    parser.add_argument("--skip-sensor", action="store_true", help="no sensor latency under dagster dev")
    parser.add_argument("--skip-incremental", action="store_true", help="no incremental-day measurement")
    parser.add_argument("--skip-concurrency", action="store_true", help="no backfill with 1, 2 and 4 runs at once")
    parser.add_argument(
        "--skip-celery", action="store_true", help="no production-profile backfill with 1 and 2 Celery workers"
    )
    parser.add_argument(
        "--skip-online", action="store_true", help="no stream latency and prediction service measurement"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default benchmarks/results)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="generated data (default .ml_platform/bench)")
    parser.add_argument(
        "--train-up-to",
        type=int,
        default=1,
        metavar="SCALE",
        help="(a) trains and predicts at scales up to this one (default 1)",
    )
    parser.add_argument(
        "--duckdb-memory-limit",
        default="1GB",
        help="DuckDB memory_limit for (a) and (b) (default 1GB; 'none' = DuckDB's 80%% of RAM)",
    )
    parser.add_argument(
        "--min-free-gb",
        type=float,
        default=1.5,
        help="stop a contender if the machine's available memory falls below this (default 1.5)",
    )
    parser.add_argument("--keep-work", action="store_true", help="keep each contender's data home")
    parser.add_argument(
        "--before",
        type=Path,
        metavar="JSON",
        help="an earlier results file to compare with (default: the latest one in --out)",
    )
    args = parser.parse_args(argv)
    if any(s < 1 for s in args.scale):
        parser.error("--scale values must be at least 1")
    if args.duckdb_memory_limit.lower() == "none":
        args.duckdb_memory_limit = None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ[T0_ENV] = str(time.time())
    started, stamp = time.monotonic(), dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    contenders = sorted(args.only or NAMES)
    platform_included = "a" in contenders
    work = (args.work / "runs" / stamp).resolve()
    work.mkdir(parents=True)
    inputs_root = (args.work / "inputs").resolve()
    summary = {
        "date": dt.date.today().isoformat(),
        "started_at": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": _machine(),
        "options": {
            "scales": args.scale,
            "contenders": contenders,
            "duckdb_memory_limit": args.duckdb_memory_limit,
            "train_up_to": args.train_up_to,
        },
        "scales": {},
    }
    progress(f"benchmark: scales {args.scale}, contenders {contenders}, work {work}")
    for scale in args.scale:
        ensure_inputs(inputs_root, scale, progress)
        run = summary["scales"][str(scale)] = {}
        for which in contenders:
            folder = work / f"x{scale}-{which}"
            run[which] = spawn(
                which,
                scale,
                inputs_root,
                folder,
                train=scale <= args.train_up_to,
                duckdb_memory_limit=args.duckdb_memory_limit,
                min_available_gb=args.min_free_gb,
            )
            if not args.keep_work:
                shutil.rmtree(folder, ignore_errors=True)
    skip = "the platform (a) is not among the contenders (--only)"
    if args.skip_incremental or not platform_included:
        summary["incremental"] = {"skipped": "--skip-incremental" if args.skip_incremental else skip}
    else:
        ensure_inputs(inputs_root, 1, progress)
        summary["incremental"] = _incremental(work, inputs_root, args.min_free_gb)
    if args.skip_concurrency or not platform_included:
        summary["concurrency"] = {"skipped": "--skip-concurrency" if args.skip_concurrency else skip}
    else:
        ensure_inputs(inputs_root, 1, progress)
        summary["concurrency"] = _concurrency(work, inputs_root, args.min_free_gb)
    if args.skip_celery or not platform_included:
        summary["celery_workers"] = {"skipped": "--skip-celery" if args.skip_celery else skip}
    else:
        summary["celery_workers"] = _part("celery_workers", work, args.min_free_gb)
    if args.skip_online:
        summary["online"] = {"skipped": "--skip-online"}
    else:
        summary["online"] = _part("online", work, args.min_free_gb)
    if args.skip_sensor or not platform_included:
        summary["sensor"] = {"skipped": "--skip-sensor" if args.skip_sensor else skip}
    else:
        summary["sensor"] = _sensor(work)
    if not args.keep_work:
        for leftover in ("incremental", "sensor"):
            shutil.rmtree(work / leftover / "home", ignore_errors=True)  # logs stay
        for level in (work / "concurrency").glob("runs_*"):
            shutil.rmtree(level / "home", ignore_errors=True)
    summary["machine"]["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    summary["wall_seconds"] = time.monotonic() - started
    summary = report.summarize(summary)
    earlier = args.before or _latest_results(args.out)
    if earlier is not None:
        summary["before"] = report.before(earlier)
    json_path, md_path = report.write(summary, args.out)
    progress(f"benchmark: wrote {json_path} and {md_path}")
    for t in summary["targets"]:
        progress(f"target {t['target']}: {report.status(t)}")
    if summary["failures"]:
        print("\nBENCHMARK FAILED:\n" + "\n".join(f"  - {f}" for f in summary["failures"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
