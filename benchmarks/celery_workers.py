"""Celery workers in the production profile: a backfill of 30 days with 1 and with 2 workers (issue #17).

The same backfill as ``benchmarks.concurrency`` (30 one-day runs of the lake and warehouse assets,
``ingest_landing`` + ``load_warehouse``'s), here with every step on Celery workers. For each worker
count, a fresh production deployment on loopback, as `ml-platform up --profile production` sets it
up: the Dagster instance, the warehouse catalog and the operational database in Postgres databases
of their own (made here, dropped afterwards), the landing zone and the lake in a bucket of its own
on a moto S3 server, a RabbitMQ queue of its own, the weather API, and N `dagster-celery` workers
started with the command `up` uses (``production.worker_command``). The days are landed and the
reference dimensions loaded, not timed.

Then ``--runs-at-once`` run processes (2) share the days and execute them one after another, each
a one-day run whose steps go to the workers through the Celery executor, with the instance's pools
(one writer per table). Timed: from the first run's start to the last run's end. Reported: the wall
time, the speed-up over one worker, failed runs, the lock errors (every event of every run that
tells of a lock or a commit conflict, as ``benchmarks.concurrency`` counts them; must be 0), and
whether every worker count left the same rows in the warehouse.

    python -m benchmarks.celery_workers                       # 30 days, 2 runs at once, 1 and 2 workers
    python -m benchmarks.celery_workers --days 6              # a small scale
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from benchmarks.measure import progress
from ml_platform.settings import REPO_ROOT, Settings

FIRST_DAY = dt.date(2013, 1, 1)
POSTGRES_URL = os.environ.get("ML_PLATFORM_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
BROKER = os.environ.get("ML_PLATFORM_CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
DIMENSION_KEYS = ("lake/raw_airlines", "lake/raw_airports", "lake/raw_planes") + tuple(
    f"warehouse/dim_{name}" for name in ("carriers", "airports", "planes")
)
# The daily assets of the backfill: what ingest_landing and load_warehouse materialize (the stream's not).
BACKFILL_GROUPS = ("lake", "warehouse")
NOT_BACKFILLED = ("lake/raw_flight_events",)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@contextmanager
def _databases(*roles: str) -> Iterator[dict[str, str]]:
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    stem = f"mlp_bench_{uuid.uuid4().hex[:10]}"
    names = {role: f"{stem}_{role}" for role in roles}
    try:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        base = sa.engine.make_url(POSTGRES_URL)
        yield {role: base.set(database=name).render_as_string(hide_password=False) for role, name in names.items()}
    finally:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def _s3_server(folder: Path) -> Iterator[str]:
    from benchmarks.platform_run import _stop_group

    port = _free_port()
    with open(folder / "moto.log", "wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop_group(proc)


@contextmanager
def _celery_queue() -> Iterator[str]:
    import kombu

    queue = f"mlp_bench_{uuid.uuid4().hex[:10]}"
    try:
        yield queue
    finally:
        with kombu.Connection(BROKER) as conn:
            channel = conn.channel()
            channel.queue_delete(queue)
            channel.exchange_delete(queue)


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _weather_api() -> Iterator[str]:
    from ml_platform.devdata.weather_server import make_server

    server = make_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def deployment(folder: Path, workers: int, days: int) -> Iterator[tuple[Settings, dict[str, str], list[Path]]]:
    """A production deployment in ``folder`` with ``workers`` workers and ``days`` landed; removed afterwards.

    Yields (settings, the environment its processes run with, the workers' log files).
    """
    import boto3
    from sqlalchemy.engine import make_url

    from ml_platform.devdata.replay import replay_days
    from ml_platform.io.store import open_store
    from ml_platform.ops import production
    from ml_platform.ops.services import Service
    from ml_platform_tests.warehouses import delete_bucket

    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        endpoint = stack.enter_context(_s3_server(folder))
        urls = stack.enter_context(_databases("dagster", "catalog", "ops"))
        queue = stack.enter_context(_celery_queue())
        weather = stack.enter_context(_weather_api())
        aws = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        stack.enter_context(_environ(aws))  # this process lands the files
        bucket = f"mlp-bench-{uuid.uuid4().hex[:10]}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        stack.callback(delete_bucket, bucket)
        u = make_url(urls["catalog"])
        libpq = " ".join(
            f"{k}={v}"
            for k, v in {
                "dbname": u.database,
                "host": u.host,
                "port": u.port,
                "user": u.username,
                "password": u.password,
            }.items()
            if v
        )
        env = {
            **os.environ,
            "ML_PLATFORM_HOME": str(folder / "home"),
            "ML_PLATFORM_EXECUTOR": "celery",
            "ML_PLATFORM_DAGSTER_STORAGE_URL": urls["dagster"],
            "ML_PLATFORM_CATALOG_URL": f"postgres:{libpq}",
            "ML_PLATFORM_OPS_DB_URL": urls["ops"],
            "ML_PLATFORM_MLFLOW_BACKEND_URL": urls["ops"],  # not used by the data stages
            "ML_PLATFORM_MLFLOW_ARTIFACTS_URL": f"s3://{bucket}/mlflow",
            "ML_PLATFORM_LANDING_URL": f"s3://{bucket}/landing",
            "ML_PLATFORM_LAKE_URL": f"s3://{bucket}/lake",
            "ML_PLATFORM_CELERY_BROKER_URL": BROKER,
            "ML_PLATFORM_CELERY_QUEUE": queue,
            "ML_PLATFORM_WEATHER_API_URL": weather,
            "ML_PLATFORM_LANDING_SETTLE_SECONDS": "0",
            "OMP_WAIT_POLICY": "PASSIVE",
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        settings = Settings.from_env(env)
        production.preflight(settings)
        dagster_home = production.prepare_home(settings)
        env["DAGSTER_HOME"] = str(dagster_home)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        _prepare_stores(settings, env)
        for _ in replay_days(open_store(settings.landing_url), FIRST_DAY, days):
            pass
        logs = [folder / f"celery-worker-{n}.log" for n in range(1, workers + 1)]
        services = [
            Service(f"celery-worker-{n}", production.worker_command(settings, n), env, logs[n - 1])
            for n in range(1, workers + 1)
        ]
        for service in services:
            service.start()
            stack.callback(service.stop)
        _wait_for_workers(settings, workers)
        yield settings, env, logs


def _prepare_stores(settings: Settings, env: dict[str, str]) -> None:
    """As `up` does, in a child process with the deployment's environment (its Postgres URLs, its S3)."""
    code = (
        "from ml_platform.settings import Settings\n"
        "from ml_platform.ops import production\n"
        "s = Settings.from_env()\n"
        "import dagster as dg\n"
        "dg.DagsterInstance.from_config(str(s.dagster_home)).dispose()\n"
        "from ml_platform.io.warehouse import connect_warehouse\n"
        "connect_warehouse(s.warehouse).close()\n"
        "from ml_platform.devdata.reference_data import read_reference_table\n"
        "from ml_platform.domain.flights import REFERENCE_TABLES\n"
        "from ml_platform.io.ops_db import replace_tables\n"
        "replace_tables(s.ops_db_url, {n: read_reference_table(n) for n in REFERENCE_TABLES})\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=REPO_ROOT)


def _wait_for_workers(settings: Settings, workers: int, timeout: float = 120) -> None:
    import socket

    from dagster_celery.make_app import make_app

    from ml_platform.ops.production import worker_name

    app = make_app({"broker": settings.celery_broker_url, "backend": "rpc://", "include": [], "config_source": {}})
    names = [f"{worker_name(settings, n)}@{socket.gethostname()}" for n in range(1, workers + 1)]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.inspect(destination=names, timeout=1.0, limit=workers).ping() or {}
        if len(replies) == workers:
            return
        time.sleep(1)
    raise TimeoutError(f"{workers} Celery workers did not answer within {timeout}s")


def _launch(env: dict[str, str], what: str, days: list[str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "benchmarks.celery_workers", "--execute", what, "--execute-days", ",".join(days)]
    out = open(log, "wb")  # noqa: SIM115 - closed when the process ends
    return subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)


def _result_of(log: Path) -> dict:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{") and '"runs"' in line:
            return json.loads(line)
    return {"runs": [], "error": f"no result printed: see {log}"}


def _check_warehouse(settings: Settings, env: dict[str, str], run_ids: list[str]) -> tuple[list[str], dict]:
    """The lock errors in the runs' events and the warehouse's rows per table and day."""
    import dagster as dg

    from ml_platform.io.warehouse import close_warehouses, connect_warehouse
    from ml_platform_tests.defs.concurrent_runs import lock_errors, table_counts

    with _environ({k: env[k] for k in ("ML_PLATFORM_DAGSTER_STORAGE_URL",)}):
        with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
            errors = lock_errors(instance, run_ids)
    try:
        with connect_warehouse(settings.warehouse, read_only=True) as conn:
            counts = table_counts(conn)
    finally:
        close_warehouses()
    return errors, counts


def measure(folder: Path, workers: int, days: int, runs_at_once: int) -> dict:
    """The backfill of ``days`` one-day runs, ``runs_at_once`` at a time, on ``workers`` workers."""
    progress(f"celery: {workers} worker(s): preparing a deployment with {days} days landed")
    with deployment(folder, workers, days) as (settings, env, _):
        # Twice at most: two workers creating the dimension tables of a new catalog at once can
        # conflict at commit (run_ddl retries a schema created meanwhile, not yet a table).
        for attempt in (1, 2):
            log = folder / f"dimensions-{attempt}.log"
            if _launch(env, "dimensions", [], log).wait() == 0:
                break
            progress(f"celery: {workers} worker(s): loading the dimensions failed ({log}); again")
        else:
            raise RuntimeError(f"loading the dimensions failed twice: see {log}")
        all_days = [str(FIRST_DAY + dt.timedelta(days=i)) for i in range(days)]
        shares = [all_days[i::runs_at_once] for i in range(runs_at_once)]
        logs = [folder / f"runs-{i}.log" for i in range(len(shares))]
        progress(f"celery: {workers} worker(s): {days} one-day runs, {runs_at_once} at a time")
        procs = [_launch(env, "backfill", share, log) for share, log in zip(shares, logs, strict=True)]
        for proc in procs:
            proc.wait()
        results = [_result_of(log) for log in logs]
        runs = [r for result in results for r in result["runs"]]
        started = min((r["started"] for r in runs), default=0.0)
        ended = max((r["ended"] for r in runs), default=0.0)
        errors, counts = _check_warehouse(settings, env, [r["run_id"] for r in runs])
    summary = {
        "workers": workers,
        "days": days,
        "runs_at_once": runs_at_once,
        "runs": len(runs),
        "seconds": round(ended - started, 1),
        "failed_runs": [r["day"] for r in runs if not r["success"]] + [x["error"] for x in results if "error" in x],
        "lock_errors": len(errors),
        "lock_error_samples": errors[:5],
        "rows": {table: sum(per_day.values()) for table, per_day in counts.items()},
        "_counts": counts,
    }
    progress(
        f"celery: {workers} worker(s): {summary['seconds']} s, {len(summary['failed_runs'])} failed, "
        f"{summary['lock_errors']} lock errors, rows {summary['rows']}"
    )
    return summary


def run(work: Path, days: int = 30, runs_at_once: int = 2, worker_counts: tuple[int, ...] = (1, 2)) -> dict:
    """The measurement for `make bench`: each worker count on a fresh deployment, then the speed-up."""
    work.mkdir(parents=True, exist_ok=True)
    measured = [measure(work / f"workers-{n}", n, days, runs_at_once) for n in worker_counts]
    counts = [m.pop("_counts") for m in measured]
    base = measured[0]["seconds"]
    return {
        "days": days,
        "runs_at_once": runs_at_once,
        "by_workers": measured,
        "speedup": {str(m["workers"]): round(base / m["seconds"], 2) if m["seconds"] else None for m in measured},
        "lock_errors": sum(m["lock_errors"] for m in measured),
        "failed_runs": sum(len(m["failed_runs"]) for m in measured),
        "same_rows": all(c == counts[0] for c in counts),
    }


# ---------------------------------------------------------------- one run (a child process)


def _execute(what: str, days: list[str]) -> int:
    """Execute runs in this process (each its own run worker), their steps on the Celery workers.

    ``dimensions``: the reference tables and dimensions, one run; ``backfill``: one run per day in
    ``days``, one after another. Prints one JSON line: the runs with their start and end times.
    """
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from ml_platform.definitions import defs

    graph = defs().resolve_asset_graph()
    daily = [
        node.key
        for node in graph.asset_nodes
        if node.is_materializable
        and node.partitions_def is not None
        and node.group_name in BACKFILL_GROUPS
        and node.key.to_user_string() not in NOT_BACKFILLED
    ]
    repository = ReconstructableRepository.for_module(
        "ml_platform.definitions", "defs", working_directory=str(REPO_ROOT)
    )
    job = repository.get_reconstructable_job("__ASSET_JOB")
    plan = [({}, [dg.AssetKey.from_user_string(k) for k in DIMENSION_KEYS])] if what == "dimensions" else []
    plan += [({"dagster/partition": day}, daily) for day in days if what == "backfill"]
    runs = []
    with dg.DagsterInstance.get() as instance:
        for tags, keys in plan:
            started = time.time()
            result = dg.execute_job(job, instance, tags=tags, asset_selection=keys, raise_on_error=False)
            day = tags.get("dagster/partition", "dimensions")
            runs.append(
                {
                    "day": day,
                    "run_id": result.run_id,
                    "success": result.success,
                    "started": started,
                    "ended": time.time(),
                }
            )
    print(json.dumps({"runs": runs}))
    return 0 if all(r["success"] for r in runs) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.celery_workers", description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs-at-once", type=int, default=2, help="run processes sharing the days (default 2)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work", type=Path, default=REPO_ROOT / ".ml_platform" / "bench" / "celery")
    parser.add_argument("--result", type=Path, help="also write the summary here (JSON)")
    parser.add_argument("--execute", choices=("dimensions", "backfill"), help=argparse.SUPPRESS)
    parser.add_argument("--execute-days", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.execute:
        return _execute(args.execute, [d for d in args.execute_days.split(",") if d])
    work = (args.work / dt.datetime.now().strftime("%Y%m%d-%H%M%S")).resolve()
    summary = run(work, args.days, args.runs_at_once, tuple(args.workers))
    text = json.dumps(summary, indent=1)
    print(text)  # the logs stay in the work folder
    if args.result:
        args.result.write_text(text + "\n")
    return 1 if summary["failed_runs"] or summary["lock_errors"] or not summary["same_rows"] else 0


if __name__ == "__main__":
    sys.exit(main())
