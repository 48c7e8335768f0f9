"""Shared fixtures: a fresh data home per test, and real servers on 127.0.0.1.

Services this machine may not run (PostgreSQL) are skipped with a visible reason
where absent, and fail instead when ML_PLATFORM_REQUIRE_SERVICES=1 (as in CI).
Servers a test needs (weather API, moto's S3 server) are started here and
stopped by process id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from ml_platform.settings import Settings

POSTGRES_URL = os.environ.get("ML_PLATFORM_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def require_service(name: str, reason: str) -> None:
    """Skip with the reason, or fail when the environment demands every service."""
    message = f"{name} unavailable: {reason}"
    if os.environ.get("ML_PLATFORM_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (ML_PLATFORM_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGINT to its process group, SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def weather_api_url():
    """The real weather API, served from a thread on a free loopback port."""
    from ml_platform.devdata.weather_server import make_server

    server = make_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weather_api_url: str) -> Settings:
    """A fresh, empty data home with the embedded defaults, and the env pointing at it."""
    monkeypatch.setenv("ML_PLATFORM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ML_PLATFORM_WEATHER_API_URL", weather_api_url)
    monkeypatch.setenv("ML_PLATFORM_LANDING_SETTLE_SECONDS", "0")  # tests land whole files at once
    monkeypatch.setenv("ML_PLATFORM_REDIS_URL", "redis://127.0.0.1:6379/1")  # keys under this home's prefix
    for var in ("ML_PLATFORM_LANDING_URL", "ML_PLATFORM_LAKE_URL", "ML_PLATFORM_OPS_DB_URL"):
        monkeypatch.delenv(var, raising=False)
    return Settings.from_env()


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server as a real HTTP endpoint on a free 127.0.0.1 port."""
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    """AWS_* variables aimed at the moto server, and a fresh bucket; yields the bucket name."""
    import boto3

    for var, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(var, value)
    bucket = f"mlp-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def postgres_url():
    """A new, empty database on the real PostgreSQL server, dropped afterwards."""
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as e:  # noqa: BLE001 - any failure to connect means "not reachable"
        admin.dispose()
        require_service("PostgreSQL", f"{POSTGRES_URL}: {str(e).splitlines()[0]}")
    name = f"mlp_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(POSTGRES_URL).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# Fixtures that mean a real server or the real year: a test using one is not in the unit tier.
_INTEGRATION_FIXTURES = {
    "s3_endpoint",
    "s3_env",
    "postgres_url",
    "mlflow_server",
    "year_warehouse",
    "year_features",
    "redis_url",
    "online",
    "replayed",
    "broker",
    "sinks",
}
_INTEGRATION_FOLDERS = ("/defs/", "/e2e/", "/serving/", "/stream/", "/ops/")
_INTEGRATION_FILES = ("test_model.py", "test_invariance.py", "test_benchmarks.py")  # models trained, weeks built
_UNIT_EXCEPTIONS = ("test_catalog.py", "test_definitions_snapshot.py", "test_automation.py")


def pytest_collection_modifyitems(items):
    """Tiers: ``unit`` (pure logic on real reference files, no server; ``make test-fast``, under a
    minute), ``integration`` (real servers, Dagster runs, the real year), ``slow`` (end to end).
    The end-to-end tests go first, then the other slow ones: under `make test`'s workers the
    longest tests start at once, and the short ones fill in at the end."""
    for item in items:
        if item.get_closest_marker("slow"):
            continue
        path = f"/{item.nodeid}"
        module = path.split("::")[0]
        integration = (
            (any(folder in path for folder in _INTEGRATION_FOLDERS) and not module.endswith(_UNIT_EXCEPTIONS))
            or module.endswith(_INTEGRATION_FILES)
            or bool(_INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())))
            or any(f"[{server}" in item.nodeid for server in ("s3", "postgres"))  # parametrized stores
        )
        item.add_marker("integration" if integration else "unit")
    items.sort(key=lambda item: ("/e2e/" not in item.nodeid, not item.get_closest_marker("slow")))
