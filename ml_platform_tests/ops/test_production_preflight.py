"""Bad input to the production profile stops `ml-platform up --profile production` at start-up with
one clear line per setting, naming it, within seconds, and before any service is started: a wrong
or unreachable warehouse catalog, an unreachable S3 endpoint, RabbitMQ down, a malformed URL.

Each case changes one setting of an otherwise working profile (the real Postgres, moto's S3 server
and RabbitMQ on loopback), so the error list must be exactly that setting's error.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_platform.ops import production
from ml_platform.settings import DEFAULT_CELERY_BROKER_URL, Settings
from ml_platform_tests.conftest import POSTGRES_URL, free_port, require_service
from ml_platform_tests.warehouses import delete_bucket

LIBPQ = "dbname=test host=127.0.0.1 user=postgres"
CHECK_SECONDS = 15  # every check gives up after 5 s; together they run at once


def _reachable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def good_env(s3_env, s3_endpoint, monkeypatch) -> dict[str, str]:
    """A complete, working production environment: Postgres, a fresh bucket on moto, RabbitMQ."""
    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as e:  # noqa: BLE001 - not reachable, whatever the reason
        require_service("PostgreSQL", f"{POSTGRES_URL}: {str(e).splitlines()[0]}")
    finally:
        engine.dispose()
    if not _reachable(5672):
        require_service("RabbitMQ", f"nothing listens on 127.0.0.1:5672 ({DEFAULT_CELERY_BROKER_URL})")
    bucket = s3_env
    env = {
        "ML_PLATFORM_DAGSTER_STORAGE_URL": POSTGRES_URL,
        "ML_PLATFORM_MLFLOW_BACKEND_URL": POSTGRES_URL,
        "ML_PLATFORM_OPS_DB_URL": POSTGRES_URL,
        "ML_PLATFORM_CATALOG_URL": f"postgres:{LIBPQ}",
        "ML_PLATFORM_LANDING_URL": f"s3://{bucket}/landing",
        "ML_PLATFORM_LAKE_URL": f"s3://{bucket}/lake",
        "ML_PLATFORM_MLFLOW_ARTIFACTS_URL": f"s3://{bucket}/mlflow",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ML_PLATFORM_CELERY_BROKER_URL", raising=False)
    yield env
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # a test may have aimed it elsewhere
    delete_bucket(bucket)


def _problems(**changes: str) -> list[str]:
    """The preflight's errors for the current environment with ``changes`` (setting -> value)."""
    try:
        production.preflight(Settings.from_env({**os.environ, **changes}))
    except production.ProductionConfigError as e:
        return e.problems
    return []


def test_a_working_environment_passes(good_env):
    started = time.monotonic()
    assert _problems() == []
    assert time.monotonic() - started < CHECK_SECONDS


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("ML_PLATFORM_CATALOG_URL", "postgres:dbname=test host=127.0.0.1 port={port} user=postgres", "does not answer"),
        ("ML_PLATFORM_CATALOG_URL", "sqlite:/tmp/catalog.sqlite", "needs the catalog in Postgres"),
        ("ML_PLATFORM_CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:{port}//", "RabbitMQ does not answer"),
        ("ML_PLATFORM_CELERY_BROKER_URL", "redis://127.0.0.1:6379/0", "use a RabbitMQ URL"),
        ("ML_PLATFORM_DAGSTER_STORAGE_URL", "postgresql+psycopg2://postgres@127.0.0.1:{port}/x", "does not answer"),
        ("ML_PLATFORM_DAGSTER_STORAGE_URL", "postgresql://postgres@127.0.0.1:5432/test", "postgresql+psycopg2://"),
        ("ML_PLATFORM_MLFLOW_BACKEND_URL", "", "is not set"),
        ("ML_PLATFORM_OPS_DB_URL", "sqlite:////tmp/ops.db", "postgresql+psycopg2://"),
        ("ML_PLATFORM_LAKE_URL", "/tmp/lake", "needs s3://bucket/prefix"),
        ("ML_PLATFORM_MLFLOW_ARTIFACTS_URL", "s3://mlp-no-such-bucket-7f3a/mlflow", "bucket does not exist"),
    ],
)
def test_one_bad_setting_is_one_error_naming_it(good_env, setting, value, expected):
    value = value.format(port=free_port())  # a port nothing listens on
    started = time.monotonic()
    problems = _problems(**{setting: value})
    assert time.monotonic() - started < CHECK_SECONDS
    assert len(problems) == 1, problems
    assert problems[0].startswith(setting), problems
    assert expected in problems[0]


def test_an_unreachable_s3_endpoint_names_each_bucket_setting_and_the_endpoint(good_env, monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    problems = _problems()
    assert [p.split("=")[0] for p in problems] == [
        "ML_PLATFORM_LANDING_URL",
        "ML_PLATFORM_LAKE_URL",
        "ML_PLATFORM_MLFLOW_ARTIFACTS_URL",
    ]
    assert all(f"S3 endpoint {endpoint} (AWS_ENDPOINT_URL) is unreachable" in p for p in problems), problems


def test_passwords_never_appear_in_the_errors(good_env):
    problems = _problems(
        ML_PLATFORM_CELERY_BROKER_URL=f"amqp://guest:s3cret@127.0.0.1:{free_port()}//",  # a fake credential, to see it redacted
        ML_PLATFORM_CATALOG_URL=f"postgres:dbname=x host=127.0.0.1 port={free_port()} user=u password=s3cret",
    )
    assert len(problems) == 2 and not any("s3cret" in p for p in problems), problems


def test_the_command_stops_with_the_setting_named_and_nothing_started(good_env, tmp_path):
    """RabbitMQ down: `ml-platform up --profile production` exits 2 within seconds, no stack trace."""
    home = tmp_path / "home"
    env = {**os.environ, "ML_PLATFORM_HOME": str(home)}
    env["ML_PLATFORM_CELERY_BROKER_URL"] = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    cli = str(Path(sys.executable).parent / "ml-platform")
    started = time.monotonic()
    result = subprocess.run([cli, "up", "--profile", "production"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - started < 30
    assert "ML_PLATFORM_CELERY_BROKER_URL=amqp://guest:***@127.0.0.1" in result.stderr
    assert "RabbitMQ does not answer" in result.stderr and "Traceback" not in result.stderr
    assert not (home / "logs").exists() and not (home / "services.json").exists()


def test_a_malformed_catalog_url_stops_any_command_naming_the_setting(tmp_path):
    """No server needed: the URL's form is checked where the settings are read."""
    env = {**os.environ, "ML_PLATFORM_HOME": str(tmp_path / "home"), "ML_PLATFORM_CATALOG_URL": "postgres"}
    cli = str(Path(sys.executable).parent / "ml-platform")
    result = subprocess.run([cli, "up", "--profile", "production"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "ML_PLATFORM_CATALOG_URL='postgres' is not a DuckLake catalog" in result.stderr
    assert "Traceback" not in result.stderr
