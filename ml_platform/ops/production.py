"""The production profile: ``ml-platform up --profile production`` (docs/profiles.md).

This machine runs Dagster's webserver and daemon, ``--celery-workers`` Celery workers (2) and an
MLflow server, each supervised like the embedded services. Everything they keep lives in servers
named by the environment: the Dagster instance, the warehouse catalog, MLflow's backend and the
operational database in Postgres; the landing zone, the lake (with the warehouse's Parquet files)
and MLflow's artifacts in S3; the steps' messages in RabbitMQ.

Before anything starts, ``preflight`` checks every setting: its form (``postgresql+psycopg2://``,
``postgres:``, ``s3://``) and that its server answers within a few seconds. Any problem stops the
command with one line per setting, naming it, and nothing is started.

The code location reads ``ML_PLATFORM_EXECUTOR`` (``executor_for``): ``up --profile production``
sets it to ``celery`` for its services, the Helm chart to ``k8s``, the embedded profile leaves it
``in_process``. With a distributed executor, values that cross steps go through S3
(``step_io_manager``); today's assets pass none (each returns a ``MaterializeResult``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ml_platform.io.store import is_s3
from ml_platform.io.warehouse import CATALOG_SETTING, WarehouseConfigError, check_s3, parse_catalog_url
from ml_platform.ops.services import server_commands
from ml_platform.settings import REPO_ROOT, Settings

TEMPLATE = REPO_ROOT / "deploy" / "dagster.production.yaml"
TEMPLATE_HOME = ".ml_platform/dagster"  # the instance folder the template names, replaced by the home's
CHECK_TIMEOUT_SECONDS = 5
PSYCOPG2 = "postgresql+psycopg2://"

# Celery keeps a step's message until the step has ended (acks_late): a worker that dies with a
# step leaves it unacknowledged, and RabbitMQ hands it to another worker. One message at a time
# per worker, so a waiting step is never held by a busy worker.
CELERY_SETTINGS = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
    # Each run's reply queue (the rpc:// backend) is removed an hour after its last use, not a day.
    "result_expires": 3600,
}


class ProductionConfigError(ValueError):
    """Settings that do not lead to working services; one line per setting, each naming it."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("the production profile can not start:\n" + "\n".join(f"  {p}" for p in problems))


def redacted(url: str) -> str:
    """``url`` without its password (``user:***@``, ``password=***``), for messages."""
    url = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", url)


# ---------------------------------------------------------------- the Dagster side


def celery_config(settings: Settings, broker: object | None = None) -> dict:
    """The Celery executor's config; the workers get the same (``broker``: a value or ``{"env": ...}``)."""
    return {
        "broker": settings.celery_broker_url if broker is None else broker,
        "backend": "rpc://",
        "config_source": {**CELERY_SETTINGS, "task_default_queue": settings.celery_queue},
    }


def executor_for(settings: Settings):
    """The executor of every job: in-process (embedded), Celery (``up --profile production``) or k8s jobs."""
    import dagster as dg

    if settings.executor == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_config(settings), name="celery")
    if settings.executor == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError:
            raise ValueError(
                "ML_PLATFORM_EXECUTOR=k8s needs dagster-k8s==0.29.27 in the image (deploy/helm/values.yaml)"
            ) from None
        return k8s_job_executor
    return dg.in_process_executor


def step_io_manager(settings: Settings) -> dict:
    """``{"io_manager": ...}`` on S3 under ``<lake>/dagster/io`` when steps run in separate processes or
    machines and the lake is on S3; else nothing (Dagster's default, files under the instance)."""
    if settings.executor == "in_process" or not is_s3(settings.lake_url):
        return {}
    from dagster_aws.s3 import S3PickleIOManager, S3Resource

    bucket, _, prefix = settings.lake_url[len("s3://") :].partition("/")
    base = "/".join(p for p in (prefix.strip("/"), "dagster", "io") if p)
    return {"io_manager": S3PickleIOManager(s3_resource=S3Resource(), s3_bucket=bucket, s3_prefix=base)}


# ---------------------------------------------------------------- preflight


def _form_problems(settings: Settings) -> list[str]:
    problems = []
    postgres = {
        "ML_PLATFORM_DAGSTER_STORAGE_URL": settings.dagster_storage_url,
        "ML_PLATFORM_MLFLOW_BACKEND_URL": settings.mlflow_backend_url,
        "ML_PLATFORM_OPS_DB_URL": settings.ops_db_url,
    }
    for name, url in postgres.items():
        if not url:
            problems.append(f"{name} is not set: the production profile needs {PSYCOPG2}user:password@host:5432/db")
        elif not url.startswith(PSYCOPG2):
            why = (
                " (a bare postgresql:// means psycopg 3 under SQLAlchemy 2.1, which is not installed)"
                if url.startswith(("postgresql://", "postgres://"))
                else ": the production profile keeps it in Postgres"
            )
            problems.append(f"{name}={redacted(url)}: use a {PSYCOPG2} URL{why}")
    buckets = {
        "ML_PLATFORM_LANDING_URL": settings.landing_url,
        "ML_PLATFORM_LAKE_URL": settings.lake_url,
        "ML_PLATFORM_MLFLOW_ARTIFACTS_URL": settings.mlflow_artifacts_url,
    }
    for name, url in buckets.items():
        if not url:
            problems.append(f"{name} is not set: the production profile needs s3://bucket/prefix")
        elif not is_s3(url) or not url[len("s3://") :].partition("/")[0]:
            problems.append(f"{name}={url}: the production profile needs s3://bucket/prefix")
    kind, _ = parse_catalog_url(settings.catalog_url)  # its form was checked by Settings.from_env
    if kind != "postgres":
        problems.append(
            f"{CATALOG_SETTING}={redacted(settings.catalog_url)}: the production profile needs the catalog in "
            "Postgres, postgres:dbname=... host=... user=..."
        )
    if not settings.celery_broker_url.startswith(("amqp://", "pyamqp://", "amqps://")):
        problems.append(
            f"ML_PLATFORM_CELERY_BROKER_URL={redacted(settings.celery_broker_url)}: use a RabbitMQ URL, "
            "amqp://USER:PASS@host:5672/vhost"
        )
    return problems


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split("\n")[0].split()) or type(error).__name__
    return text[:300]


def _check_postgres(setting: str, url: str) -> str | None:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": CHECK_TIMEOUT_SECONDS})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as e:  # noqa: BLE001 - any failure means: this setting does not lead to a database
        return f"{setting}={redacted(url)}: Postgres does not answer: {_first_line(getattr(e, 'orig', e))}"
    finally:
        engine.dispose()
    return None


def _check_catalog(catalog_url: str) -> str | None:
    import psycopg2

    _, libpq = parse_catalog_url(catalog_url)
    try:
        psycopg2.connect(f"{libpq} connect_timeout={CHECK_TIMEOUT_SECONDS}").close()
    except psycopg2.Error as e:
        return f"{CATALOG_SETTING}={redacted(catalog_url)}: the catalog's Postgres does not answer: {_first_line(e)}"
    return None


def _check_bucket(setting: str, url: str) -> str | None:
    try:
        check_s3(url, setting)
    except WarehouseConfigError as e:
        return str(e)
    return None


def _check_broker(url: str) -> str | None:
    import kombu

    try:
        with kombu.Connection(url, connect_timeout=CHECK_TIMEOUT_SECONDS) as conn:
            conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as e:  # noqa: BLE001 - refused, unknown host, bad credentials, no such vhost
        return f"ML_PLATFORM_CELERY_BROKER_URL={redacted(url)}: RabbitMQ does not answer: {_first_line(e)}"
    return None


def preflight(settings: Settings) -> None:
    """Raise ProductionConfigError naming every setting that is malformed or whose server does not answer."""
    problems = _form_problems(settings)
    if problems:
        raise ProductionConfigError(problems)
    checks = [
        (_check_postgres, "ML_PLATFORM_DAGSTER_STORAGE_URL", settings.dagster_storage_url),
        (_check_postgres, "ML_PLATFORM_MLFLOW_BACKEND_URL", settings.mlflow_backend_url),
        (_check_postgres, "ML_PLATFORM_OPS_DB_URL", settings.ops_db_url),
        (_check_catalog, settings.catalog_url),
        (_check_bucket, "ML_PLATFORM_LANDING_URL", settings.landing_url),
        (_check_bucket, "ML_PLATFORM_LAKE_URL", settings.lake_url),
        (_check_bucket, "ML_PLATFORM_MLFLOW_ARTIFACTS_URL", settings.mlflow_artifacts_url),
        (_check_broker, settings.celery_broker_url),
    ]
    with ThreadPoolExecutor(len(checks)) as pool:  # each waits seconds at most; together, not one after another
        results = list(pool.map(lambda check: check[0](*check[1:]), checks))
    problems = [p for p in results if p]
    if problems:
        raise ProductionConfigError(problems)


# ---------------------------------------------------------------- the home and the stores


def prepare_home(settings: Settings) -> Path:
    """Write the instance (``deploy/dagster.production.yaml``) and the workers' ``celery.yaml`` into the home."""
    import yaml

    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(TEMPLATE.read_text().replace(TEMPLATE_HOME, str(home)))
    # The workers read the broker from the environment: no password in the file.
    worker_config = {"execution": {"config": celery_config(settings, {"env": "ML_PLATFORM_CELERY_BROKER_URL"})}}
    (home / "celery.yaml").write_text(
        "# The Celery workers' config (dagster-celery worker start -y), written by `ml-platform up --profile "
        "production`.\n" + yaml.safe_dump(worker_config, sort_keys=False)
    )
    return home


def prepare_stores(settings: Settings, dagster_home: Path) -> None:
    """Create each store's schema once, before any service could race on it: the Dagster instance, MLflow's
    backend, the warehouse catalog; load the reference tables into a new operational database."""
    import dagster as dg

    from ml_platform.devdata.reference_data import read_reference_table
    from ml_platform.domain.flights import REFERENCE_TABLES
    from ml_platform.io.ops_db import replace_tables
    from ml_platform.io.warehouse import connect_warehouse, detach_warehouse
    from ml_platform.ops.bootstrap import is_seeded
    from ml_platform.ops.mlflow_backend import upgrade_backend

    dg.DagsterInstance.from_config(str(dagster_home)).dispose()
    upgrade_backend(settings.mlflow_backend_url)
    try:
        connect_warehouse(settings.warehouse).close()  # a new catalog is initialized here
    finally:
        detach_warehouse(settings.warehouse)  # this catalog only: other warehouses of the process stay open
    if not is_seeded(settings):
        tables = {name: read_reference_table(name) for name in REFERENCE_TABLES}
        counts = replace_tables(settings.ops_db_url, tables)
        print(
            f"operational database {redacted(settings.ops_db_url)}: "
            + ", ".join(f"{t} {n:,}" for t, n in counts.items())
        )


# ---------------------------------------------------------------- the services


def worker_name(settings: Settings, n: int) -> str:
    """The Celery node name of worker ``n`` (``<queue>-w<n>@<host>``): unique per deployment on a shared broker."""
    return f"{settings.celery_queue}-w{n}"


def _commands(settings: Settings, ports: dict[str, int], workers: int) -> dict[str, list[str]]:
    commands = server_commands(ports)  # MLflow reads its stores from the environment (MLFLOW_BACKEND_STORE_URI, ...)
    for n in range(1, workers + 1):
        commands[f"celery-worker-{n}"] = worker_command(settings, n)
    return commands


def worker_command(settings: Settings, n: int) -> list[str]:
    """Celery worker ``n`` of this deployment: one step at a time, on the deployment's queue, the code
    imported before it forks, and no gossip or mingle with other deployments' workers on the broker."""
    return [
        str(Path(sys.executable).parent / "dagster-celery"),
        "worker",
        "start",
        "-A",
        "dagster_celery.app",
        "-y",
        str(settings.dagster_home / "celery.yaml"),
        "-n",
        worker_name(settings, n),
        "-q",
        settings.celery_queue,
        "-i",
        "ml_platform.definitions",
        "--",
        "--concurrency=1",
        "--without-gossip",
        "--without-mingle",
    ]


def service_env(settings: Settings, dagster_home: Path, mlflow_url: str) -> dict[str, str]:
    """The environment every service of this profile runs with."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),  # dagster-celery starts `celery` by name
        "ML_PLATFORM_HOME": str(settings.home),
        "DAGSTER_HOME": str(dagster_home),
        "ML_PLATFORM_EXECUTOR": "celery",
        "ML_PLATFORM_CELERY_BROKER_URL": settings.celery_broker_url,
        "ML_PLATFORM_CELERY_QUEUE": settings.celery_queue,
        "MLFLOW_TRACKING_URI": mlflow_url,
        "ML_PLATFORM_MLFLOW_UI_URL": os.environ.get("ML_PLATFORM_MLFLOW_UI_URL") or mlflow_url,
        "OMP_WAIT_POLICY": "PASSIVE",
    }


def up(settings: Settings, *, dagster_port: int, mlflow_port: int, replay_days: int, workers: int) -> int:
    """Check the settings, prepare the stores, then run and supervise the services until Ctrl-C."""
    from ml_platform.ops.services import SERVICES_FILE, Service, _supervise, choose_port

    if workers < 1:
        raise ProductionConfigError([f"--celery-workers {workers}: at least one worker runs the steps"])
    preflight(settings)
    dagster_home = prepare_home(settings)
    prepare_stores(settings, dagster_home)
    if replay_days:
        import datetime as dt

        from ml_platform.ops.bootstrap import replay

        replay(settings, dt.date(2013, 1, 1), replay_days)
    ports = {"dagster": choose_port(dagster_port), "mlflow": choose_port(mlflow_port)}
    mlflow_url = f"http://127.0.0.1:{ports['mlflow']}"
    env = service_env(settings, dagster_home, mlflow_url)
    extra_env = {
        "mlflow": {
            "MLFLOW_BACKEND_STORE_URI": settings.mlflow_backend_url,
            "MLFLOW_ARTIFACTS_DESTINATION": settings.mlflow_artifacts_url,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            **({"MLFLOW_S3_ENDPOINT_URL": env["AWS_ENDPOINT_URL"]} if env.get("AWS_ENDPOINT_URL") else {}),
        }
    }
    addresses = {
        "profile": "production",
        "dagster": f"http://127.0.0.1:{ports['dagster']}",
        "mlflow": mlflow_url,
        "celery_broker": redacted(settings.celery_broker_url),
        "celery_queue": settings.celery_queue,
        "celery_workers": [worker_name(settings, n) for n in range(1, workers + 1)],
    }
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / SERVICES_FILE).write_text(json.dumps(addresses, indent=1) + "\n")
    logs = settings.home / "logs"
    services = [
        Service(name, cmd, {**env, **extra_env.get(name, {})}, logs / f"{name}.log")
        for name, cmd in _commands(settings, ports, workers).items()
    ]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        for service in services:
            service.start()
        print(
            f"\nproduction profile\nDagster UI   {addresses['dagster']}\nMLflow UI    {mlflow_url}\n"
            f"Celery       {workers} workers on {addresses['celery_broker']} (queue {settings.celery_queue})\n"
            f"Landing      {settings.landing_url}\nLake         {settings.lake_url}\n"
            f"Logs         {logs}/\nCtrl-C stops everything.\n",
            flush=True,
        )
        return _supervise(services, dagster_home)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        stop_all(services)


def stop_all(services, timeout: float = 30) -> None:
    """SIGINT every service's process group at once (each shuts down cleanly on it, a Celery worker after
    its current step), then SIGKILL any group still there after ``timeout`` seconds."""
    running = [s for s in services if s.proc is not None and s.proc.poll() is None]
    for service in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.proc.pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    for service in running:
        try:
            service.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.proc.pid, signal.SIGKILL)
            service.proc.wait()
