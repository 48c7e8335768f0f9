"""Real Dagster runs in processes of their own on one data home, started together; and what they did.

    python -m ml_platform_tests.defs.concurrent_runs run --day 2013-01-02 --job ingest_landing --job load_warehouse \\
        --go GO_FILE --out RESULT.json
    python -m ml_platform_tests.defs.concurrent_runs read --stop STOP_FILE --out OBSERVATIONS.json

``run`` waits for ``GO_FILE`` (so that every worker starts at once), then executes each job in
process for the day on the instance at ``$DAGSTER_HOME`` (the repository's dagster.yaml, pools
included) and writes the run ids and outcomes. ``read`` is a person reading the warehouse
read-only while the runs write: one read transaction per observation, until ``STOP_FILE``.
The settings come from the environment (``ML_PLATFORM_*``), as for ``dagster dev``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

WAREHOUSE_TABLES = (
    "staging.flights",
    "quarantine.flights",
    "core.fct_flights",
    "staging.weather",
    "quarantine.weather",
)
# What a lock or a commit conflict says, from DuckDB, DuckLake, SQLite or Postgres.
LOCK_ERROR = re.compile(
    r"database is locked|could not set lock|transaction conflict|conflict on|deadlock|lock timeout|"
    r"failed to commit|serialization failure",
    re.IGNORECASE,
)


def _wait_for(path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


def _run(args) -> int:
    from ml_platform_tests.helpers import platform_defs

    instance = dg.DagsterInstance.get()
    defs = platform_defs()
    _wait_for(Path(args.go))
    results = []
    for job_name in args.job:
        started = time.time()
        result = defs.resolve_job_def(job_name).execute_in_process(
            partition_key=args.day, instance=instance, raise_on_error=False
        )
        errors = [e.event_specific_data.error_display_string for e in result.get_step_failure_events()]
        results.append(
            {
                "job": job_name,
                "day": args.day,
                "run_id": result.run_id,
                "success": result.success,
                "errors": errors,
                "started": started,
                "ended": time.time(),
            }
        )
    Path(args.out).write_text(json.dumps(results))
    instance.dispose()
    return 0


def _read(args) -> int:
    from ml_platform.io.warehouse import connect_warehouse, snapshot_read
    from ml_platform.settings import Settings

    conn = connect_warehouse(Settings.from_env().warehouse, read_only=True)
    observations, errors = [], []
    stop = Path(args.stop)
    per_day = "SELECT CAST(flight_date AS VARCHAR), count(*) FROM core.fct_flights GROUP BY ALL ORDER BY 1"
    while not stop.exists():
        try:
            with snapshot_read(conn) as snapshot:
                days = dict(conn.execute(per_day).fetchall()) if _has_fct(conn) else {}
                (total,) = conn.execute("SELECT count(*) FROM core.fct_flights").fetchone() if days else (0,)
                again = dict(conn.execute(per_day).fetchall()) if days else {}
            observations.append({"snapshot": snapshot, "days": days, "total": total, "repeatable": days == again})
        except Exception as e:  # noqa: BLE001 - every failure is an observation of its own
            errors.append(f"{type(e).__name__}: {e}")
        time.sleep(0.05)
    Path(args.out).write_text(json.dumps({"observations": observations, "errors": errors}))
    return 0


def _has_fct(conn) -> bool:
    from ml_platform.pipeline.warehouse.schema import table_columns

    return bool(table_columns(conn, "core.fct_flights"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml_platform_tests.defs.concurrent_runs")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--day", required=True)
    run.add_argument("--job", action="append", required=True)
    run.add_argument("--go", required=True)
    run.add_argument("--out", required=True)
    read = sub.add_parser("read")
    read.add_argument("--stop", required=True)
    read.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    return _run(args) if args.command == "run" else _read(args)


# ---------------------------------------------------------------- the test's side


def start(command: list[str], log: Path) -> subprocess.Popen:
    """``python -m ml_platform_tests.defs.concurrent_runs <command>`` with this environment, output to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ml_platform_tests.defs.concurrent_runs", *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
            start_new_session=True,
        )


def wait_all(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    for proc, log in zip(procs, logs, strict=True):
        try:
            proc.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode != 0:
            raise AssertionError(f"worker exited with {proc.returncode}:\n{log.read_text()[-4000:]}")


def step_intervals(instance: dg.DagsterInstance, run_ids: list[str]) -> list[tuple[str, str, float, float]]:
    """(step key, run id, start, end) of every step of the runs that started, from their event logs."""
    spans = []
    for run_id in run_ids:
        starts: dict[str, float] = {}
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                starts[event.step_key] = record.timestamp
            elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                spans.append((event.step_key, run_id, starts[event.step_key], record.timestamp))
    return spans


def step_pools(job_name: str) -> dict[str, str | None]:
    """{step key: pool} of a job's steps (top-level ops: the step key is the op's name)."""
    from ml_platform_tests.helpers import platform_defs

    job = platform_defs().resolve_job_def(job_name)
    return {node.name: node.definition.pool for node in job.graph.nodes}


def overlapping(spans: list[tuple[str, str, float, float]], step_key: str) -> bool:
    """Whether two runs' ``step_key`` steps were running at the same moment."""
    mine = sorted((s, e) for k, _, s, e in spans if k == step_key)
    return any(later[0] < earlier[1] for earlier, later in zip(mine, mine[1:], strict=False))


def lock_errors(instance: dg.DagsterInstance, run_ids: list[str]) -> list[str]:
    """Every event message of the runs that tells of a lock or a commit conflict."""
    found = []
    for run_id in run_ids:
        for record in instance.all_logs(run_id):
            text = record.user_message or ""
            event = record.dagster_event
            data = getattr(event, "event_specific_data", None) if event else None
            error = getattr(data, "error", None)
            if error is not None:
                text += " " + error.to_string()
            if LOCK_ERROR.search(text):
                found.append(f"{run_id[:8]}: {text[:300]}")
    return found


def table_counts(conn) -> dict[str, dict[str, int]]:
    """{table: {day: rows}} of the daily warehouse tables."""
    from ml_platform.pipeline.warehouse.schema import table_columns

    counts = {}
    for table in WAREHOUSE_TABLES:
        column = "weather_date" if "weather" in table else "flight_date"
        if table_columns(conn, table):
            rows = conn.execute(f"SELECT CAST({column} AS VARCHAR), count(*) FROM {table} GROUP BY ALL").fetchall()
            counts[table] = dict(sorted(rows))
    return counts


if __name__ == "__main__":
    sys.exit(main())
