"""Concurrent runs: a backfill of 30 days, one run per day, with 1, 2 and 4 runs at a time.

For each level, a fresh data home on the 1x year (``PlatformHome``: the repository's
dagster.yaml, pools included, and the embedded DuckLake warehouse): the 30 days landed, the
reference tables and dimensions loaded (not timed). Then N worker processes start together and
share the 30 days; each executes, day after day, ``ingest_landing`` and ``load_warehouse`` for
its day in process on the shared instance, so at most N runs are in flight, as with
``max_concurrent_runs: N``. Timed: from the start signal until the last run ended. Reported:
the wall time, the speed-up over one run at a time, failed runs, and the lock errors (every
event of every run that tells of a lock or a commit conflict; must be 0). The levels' tables
must hold the same rows.

    python -m benchmarks.concurrency --inputs DIR --work DIR --result FILE [--days 30] [--levels 1 2 4]
    python -m benchmarks.concurrency worker --days 2013-01-01,2013-01-03 --go FILE --out FILE   (internal)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from benchmarks.data import ensure_inputs
from benchmarks.measure import progress
from benchmarks.platform_run import PlatformHome
from ml_platform.defs.lake.reference import raw_reference_tables
from ml_platform.defs.warehouse.assets import dim_airports, dim_carriers, dim_planes
from ml_platform.io.warehouse import connect_warehouse
from ml_platform_tests.defs.concurrent_runs import lock_errors, table_counts

JOBS = ("ingest_landing", "load_warehouse")
LEVELS = (1, 2, 4)
DAYS = 30


def _worker(days: list[str], go: Path, out: Path) -> int:
    """Run JOBS for each day in turn on $DAGSTER_HOME's instance, once ``go`` exists."""
    from ml_platform.definitions import defs

    instance = dg.DagsterInstance.get()
    jobs = [defs().resolve_job_def(name) for name in JOBS]
    while not go.exists():
        time.sleep(0.01)
    runs = []
    for day in days:
        for job in jobs:
            result = job.execute_in_process(
                partition_key=day,
                instance=instance,
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )
            runs.append({"job": job.name, "day": day, "run_id": result.run_id, "success": result.success})
    out.write_text(json.dumps({"runs": runs, "ended": time.time()}))
    instance.dispose()
    return 0


def _level(inputs, work: Path, runs_at_once: int, days: list) -> dict:
    with PlatformHome(work / "home", inputs, mlflow=False) as platform:
        platform.land(days)
        platform.materialize([*raw_reference_tables, dim_carriers, dim_airports, dim_planes], "dimensions")
        os.environ["DAGSTER_HOME"] = str(platform.settings.dagster_home)
        go = work / "go"
        shares = [[str(d) for d in days[i::runs_at_once]] for i in range(runs_at_once)]
        procs, outs = [], []
        for i, share in enumerate(shares):
            outs.append(work / f"worker{i}.json")
            cmd = [sys.executable, "-m", "benchmarks.concurrency", "worker", "--days", ",".join(share)]
            with open(work / f"worker{i}.log", "wb") as log:
                cmd += ["--go", str(go), "--out", str(outs[-1])]
                procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()))
        time.sleep(3)  # the workers import Dagster and the platform before the clock starts
        started = time.time()
        go.touch()
        for proc in procs:
            proc.wait()
        results = [json.loads(out.read_text()) for out in outs if out.exists()]
        wall = max(r["ended"] for r in results) - started if len(results) == len(procs) else None
        runs = [run for r in results for run in r["runs"]]
        errors = lock_errors(platform.instance, [r["run_id"] for r in runs])
        with connect_warehouse(platform.settings.warehouse, read_only=True) as conn:
            counts = table_counts(conn)
    return {
        "runs_at_once": runs_at_once,
        "wall_seconds": wall,
        "runs": len(runs),
        "failed_runs": [f"{r['job']} {r['day']}" for r in runs if not r["success"]],
        "workers_failed": [i for i, p in enumerate(procs) if p.returncode],
        "lock_errors": len(errors),
        "lock_error_samples": errors[:5],
        "rows": {table: sum(days.values()) for table, days in counts.items()},
        "counts": counts,
    }


def run(inputs_root: Path, work: Path, days: int = DAYS, levels: tuple[int, ...] = LEVELS) -> dict:
    inputs = ensure_inputs(inputs_root, 1, progress)
    backfill = list(inputs.days)[:days]
    measured = {}
    for n in levels:
        progress(f"concurrency: {len(backfill)} days, {n} run(s) at a time ...")
        result = _level(inputs, work / f"runs_{n}", n, backfill)
        measured[str(n)] = result
        wall = "no time (a worker failed)" if result["wall_seconds"] is None else f"{result['wall_seconds']:.1f}s"
        progress(
            f"concurrency: {n} at a time: {wall}, {result['runs']} runs, "
            f"{len(result['failed_runs'])} failed, {result['lock_errors']} lock errors"
        )
    base = measured[str(levels[0])]["wall_seconds"]
    for result in measured.values():
        result["speedup"] = base / result["wall_seconds"] if base and result["wall_seconds"] else None
    counts = [m["counts"] for m in measured.values()]
    return {
        "days": len(backfill),
        "jobs_per_day": list(JOBS),
        "levels": measured,
        "lock_errors": sum(m["lock_errors"] for m in measured.values()),
        "failed_runs": sum(len(m["failed_runs"]) for m in measured.values()),
        "same_rows_at_every_level": all(c == counts[0] for c in counts),
    }


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["worker"]:
        parser = argparse.ArgumentParser(prog="python -m benchmarks.concurrency worker")
        parser.add_argument("--days", required=True)
        parser.add_argument("--go", type=Path, required=True)
        parser.add_argument("--out", type=Path, required=True)
        args = parser.parse_args(argv[1:])
        return _worker(args.days.split(","), args.go, args.out)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.concurrency", description=__doc__)
    parser.add_argument("--inputs", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS))
    args = parser.parse_args(argv)
    result = run(args.inputs, args.work, args.days, tuple(args.levels))
    args.result.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
