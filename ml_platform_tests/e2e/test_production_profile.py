"""`ml-platform up --profile production` for real, on loopback servers: the Dagster instance, the
warehouse catalog, MLflow's backend and the operational database in Postgres (a database each, made
here and dropped afterwards), the landing zone, the lake and MLflow's artifacts in a bucket of their
own on moto's S3 server, the steps on two Celery workers through RabbitMQ (a queue of their own).

A replayed stretch of days reaches `ml.predictions` with no click: landing sensor, automation,
retraining policy and promotion; automation's runs (warehouse to predictions) have every step on a
Celery worker. One worker is killed (SIGKILL, its whole process group) while it runs a warehouse
step; the step's message goes back to RabbitMQ and another worker runs it, the supervisor starts
the killed worker again, and the run still succeeds (or, failing that, its retry).
The warehouse then holds each flight once, in `core.fct_flights` and in `ml.predictions`, read
through a read-only connection as a person would.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_platform.domain.flights import FLIGHT_KEY
from ml_platform.io.warehouse import connect_warehouse, detach_warehouse
from ml_platform.ops import production
from ml_platform.settings import DEFAULT_CELERY_BROKER_URL, Settings
from ml_platform_tests.conftest import POSTGRES_URL, require_service
from ml_platform_tests.e2e.platform import Platform
from ml_platform_tests.warehouses import delete_bucket

pytestmark = pytest.mark.slow

DAYS = 2  # 2013-01-01..02: the first model trains on 01-01 and holds out 01-02, which it then scores
WORKERS = 2
# Steps that write the warehouse: the one killed mid-run is one of these.
WAREHOUSE_STEPS = ("staging_flights", "staging_weather", "fct_flights", "flight_features")
KEY = ", ".join(FLIGHT_KEY)


@contextmanager
def _databases(*roles: str):
    """A new Postgres database per role, ``{role: postgresql+psycopg2 URL}``; dropped afterwards."""
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as e:  # noqa: BLE001 - not reachable, whatever the reason
        admin.dispose()
        require_service("PostgreSQL", f"{POSTGRES_URL}: {str(e).splitlines()[0]}")
    stem = f"mlp_prod_{uuid.uuid4().hex[:10]}"
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


def _libpq(url: str) -> str:
    u = sa.engine.make_url(url)
    parts = {"dbname": u.database, "host": u.host, "port": u.port, "user": u.username, "password": u.password}
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)


@contextmanager
def _celery_queue(broker: str):
    """A queue name of this test's own; the queue and its exchange are deleted afterwards."""
    import kombu

    with socket.socket() as s:
        s.settimeout(2)
        if s.connect_ex(("127.0.0.1", 5672)) != 0:
            require_service("RabbitMQ", f"nothing listens on 127.0.0.1:5672 ({broker})")
    queue = f"mlp_test_{uuid.uuid4().hex[:10]}"
    try:
        yield queue
    finally:
        with kombu.Connection(broker) as conn:
            channel = conn.channel()
            channel.queue_delete(queue)
            channel.exchange_delete(queue)


def _celery_app(settings: Settings):
    from dagster_celery.make_app import make_app

    return make_app({"broker": settings.celery_broker_url, "backend": "rpc://", "include": [], "config_source": {}})


def _kill_a_worker_in_a_warehouse_step(app, names: list[str], timeout: float) -> tuple[str, str, str]:
    """Wait until a worker runs a warehouse step, then SIGKILL that worker's process group.

    Returns (worker, step key, run id).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inspect = app.control.inspect(destination=names, timeout=1.0, limit=len(names))
        for worker, tasks in (inspect.active() or {}).items():
            for task in tasks:
                args = task.get("kwargs", {}).get("execute_step_args_packed", {})
                steps = args.get("step_keys_to_execute") or []
                if any(s.split("[")[0] in WAREHOUSE_STEPS for s in steps):
                    pid = inspect.stats()[worker]["pid"]  # the worker's main process
                    os.killpg(os.getpgid(pid), signal.SIGKILL)  # the worker, its pool child, its wrapper
                    return worker, steps[0], args.get("run_id") or args["pipeline_run_id"]  # its stored name
        time.sleep(0.2)
    raise TimeoutError(f"no worker ran a warehouse step within {timeout}s")


class ProductionPlatform(Platform):
    """`ml-platform up --profile production` with this test's environment."""

    def __init__(self, home: Path, env: dict[str, str]):
        super().__init__(home)
        self.env.update(env)

    def start(self, replay_days: int = DAYS) -> None:
        cmd = [
            str(Path(sys.executable).parent / "ml-platform"),
            "up",
            "--profile",
            "production",
            "--replay-days",
            str(replay_days),
            "--celery-workers",
            str(WORKERS),
            "--dagster-port",
            str(self.dagster_port),
            "--mlflow-port",
            str(self.mlflow_port),
        ]
        with open(self.home.parent / "up.log", "ab") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log, start_new_session=True)

    def stop(self, timeout: float = 60) -> int:
        """Ctrl-C (SIGINT to its group); `up` stops its services, at most 30 s; SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def _settled(platform: Platform) -> bool:
    return platform.materialized_partitions("models", "predictions") >= DAYS and not platform.busy()


def test_a_replayed_stretch_reaches_predictions_on_celery_workers_and_survives_a_killed_worker(
    tmp_path, s3_endpoint, weather_api_url, monkeypatch
):
    import boto3

    started = time.monotonic()
    aws = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    with ExitStack() as stack:
        urls = stack.enter_context(_databases("dagster", "catalog", "mlflow", "ops"))
        queue = stack.enter_context(_celery_queue(DEFAULT_CELERY_BROKER_URL))
        bucket = f"mlp-prod-{uuid.uuid4().hex[:10]}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        stack.callback(delete_bucket, bucket)
        home = tmp_path / "home"
        env = {
            **aws,
            "ML_PLATFORM_HOME": str(home),
            "ML_PLATFORM_DAGSTER_STORAGE_URL": urls["dagster"],
            "ML_PLATFORM_CATALOG_URL": f"postgres:{_libpq(urls['catalog'])}",
            "ML_PLATFORM_MLFLOW_BACKEND_URL": urls["mlflow"],
            "ML_PLATFORM_OPS_DB_URL": urls["ops"],
            "ML_PLATFORM_LANDING_URL": f"s3://{bucket}/landing",
            "ML_PLATFORM_LAKE_URL": f"s3://{bucket}/lake",
            "ML_PLATFORM_MLFLOW_ARTIFACTS_URL": f"s3://{bucket}/mlflow",
            "ML_PLATFORM_CELERY_QUEUE": queue,
            "ML_PLATFORM_WEATHER_API_URL": weather_api_url,
            "ML_PLATFORM_RETRAIN_NEW_DAYS": str(DAYS),
            "ML_PLATFORM_LANDING_SETTLE_SECONDS": "0",
            "ML_PLATFORM_REDIS_URL": "redis://127.0.0.1:6379/1",
        }
        platform = ProductionPlatform(home, env)
        settings = Settings.from_env(platform.env)
        workers = [f"{production.worker_name(settings, n)}@{socket.gethostname()}" for n in range(1, WORKERS + 1)]
        platform.start(replay_days=DAYS)
        stack.callback(platform.stop)
        stack.callback(_delete_online_keys, settings)

        killed, step, run_id = _kill_a_worker_in_a_warehouse_step(_celery_app(settings), workers, 300)
        killed_at = time.monotonic() - started
        platform.wait_for(lambda: _settled(platform), f"{DAYS} days to reach predictions", 420)
        settled_at = time.monotonic() - started

        runs = platform.runs()
        killed_run = next(r for r in runs if r["runId"] == run_id)
        # Redelivered to a worker, the step ends and so does its run (or, failing that, its retry).
        retries = [r for r in runs if {"key": "dagster/parent_run_id", "value": run_id} in r["tags"]]
        assert killed_run["status"] == "SUCCESS" or any(r["status"] == "SUCCESS" for r in retries), runs
        log = (home.parent / "up.log").read_text()
        assert f"celery-worker-{workers.index(killed) + 1} exited" in log  # and was started again
        assert {r["jobName"] for r in runs} >= {"ingest_landing", "train_and_promote"}

        with connect_warehouse(settings.warehouse, read_only=True) as conn:
            facts = conn.execute(f"SELECT count(*), count(DISTINCT ({KEY})) FROM core.fct_flights").fetchone()
            day_one = conn.execute("SELECT count(*) FROM core.fct_flights WHERE flight_date = '2013-01-01'").fetchone()
            predicted = conn.execute(
                f"SELECT count(*), count(DISTINCT ({KEY}, model_version)), min(flight_date), max(flight_date) "
                "FROM ml.predictions"
            ).fetchone()
        detach_warehouse(settings.warehouse)
        assert facts[0] == facts[1] > 0, facts  # each flight once
        assert day_one == (842,)
        assert predicted[0] == predicted[1] > 0, predicted  # each flight once per model version
        assert predicted[2:] == (dt.date(2013, 1, DAYS), dt.date(2013, 1, DAYS))  # only after the cut-off

        # Where things went: Dagster's runs in Postgres, MLflow's model files in S3.
        engine = sa.create_engine(urls["dagster"])
        with engine.connect() as conn:
            (stored_runs,) = conn.execute(sa.text("SELECT count(*) FROM runs")).fetchone()
        engine.dispose()
        assert stored_runs == len(runs)
        artifacts = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="mlflow/").get("KeyCount", 0)
        assert artifacts > 0

        print(
            f"\nproduction profile: killed {killed} in {step} at {killed_at:.0f}s; "
            f"{DAYS} days predicted and idle at {settled_at:.0f}s; {len(runs)} runs"
        )
        assert platform.stop() == 0  # a clean Ctrl-C stops every service


def _delete_online_keys(settings: Settings) -> None:
    """The online store's keys of this home (its own prefix in Redis db 1)."""
    import redis

    from ml_platform.serving.online_store import key_prefix_for_home

    client = redis.Redis.from_url(settings.redis_url)
    try:
        keys = list(client.scan_iter(f"{key_prefix_for_home(settings.home)}*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass
    finally:
        client.close()
