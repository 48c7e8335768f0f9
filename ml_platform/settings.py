"""Every location and knob of the platform, with embedded defaults, read in one place.

Nothing here runs at import time: call ``Settings.from_env()`` where the values
are needed (the Dagster definitions loader, the CLI, tests). Every default belongs
to the data home (``ML_PLATFORM_HOME``), so two homes on one machine never share a
registry, an instance, a key prefix or a topic unless told to.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ml_platform.domain.features import DEFAULT_HORIZON_MINUTES, MAX_HORIZON_MINUTES
from ml_platform.io.warehouse import CATALOG_SETTING, WarehouseConfig, parse_catalog_url
from ml_platform.pipeline.retraining import DEFAULT_NEW_DAYS

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SNAPSHOT_RETENTION_DAYS = 7
# The production profile (ml_platform/ops/production.py, docs/profiles.md): which executor the code
# location uses, and the Celery broker and queue its steps go through.
EXECUTORS = ("in_process", "celery", "k8s")
DEFAULT_CELERY_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_CELERY_QUEUE = "ml_platform"


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be {low}..{high}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Where the platform keeps its data and which services it talks to."""

    home: Path
    landing_url: str
    lake_url: str
    catalog_url: str  # the DuckLake catalog: sqlite:<file> (embedded) or postgres:<libpq string>
    ops_db_url: str
    weather_api_url: str
    mlflow_tracking_uri: str
    mlflow_ui_url: str
    prediction_horizon_minutes: int
    retrain_new_days: int = DEFAULT_NEW_DAYS
    duckdb_memory_limit: str = ""  # e.g. "4GB"; empty: DuckDB's default, 80 % of the machine
    redis_url: str = "redis://127.0.0.1:6379/0"  # keys under a prefix of this home (serving.online_store)
    kafka_bootstrap: str = ""  # empty: the embedded broker `make run` starts
    landing_settle_seconds: float = 2.0  # a landing file unchanged this long is taken as delivered
    snapshot_retention_days: int = DEFAULT_SNAPSHOT_RETENTION_DAYS  # time travel this far back; older expire
    # Production profile only (empty or default in the embedded one):
    executor: str = "in_process"  # in_process | celery (`up --profile production`) | k8s (the Helm chart)
    celery_broker_url: str = DEFAULT_CELERY_BROKER_URL
    celery_queue: str = DEFAULT_CELERY_QUEUE  # one per deployment: two homes on one broker never share steps
    dagster_storage_url: str = ""  # the Dagster instance's Postgres, postgresql+psycopg2://...
    mlflow_backend_url: str = ""  # the MLflow server's Postgres, postgresql+psycopg2://...
    mlflow_artifacts_url: str = ""  # the MLflow server's artifact root, s3://bucket/prefix

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the ``ML_PLATFORM_*`` variables; anything unset falls back to the data home."""
        env = os.environ if environ is None else environ
        home = Path(env.get("ML_PLATFORM_HOME") or REPO_ROOT / ".ml_platform").resolve()
        if env.get("ML_PLATFORM_WAREHOUSE_PATH"):
            raise ValueError(
                "ML_PLATFORM_WAREHOUSE_PATH is no longer read: the warehouse is a DuckLake now. Unset it; "
                f"{CATALOG_SETTING} names the catalog (default sqlite:<home>/warehouse/catalog.sqlite) and "
                "the data files live under <ML_PLATFORM_LAKE_URL>/warehouse/"
            )
        catalog_url = env.get(CATALOG_SETTING) or f"sqlite:{home / 'warehouse' / 'catalog.sqlite'}"
        executor = env.get("ML_PLATFORM_EXECUTOR") or "in_process"
        if executor not in EXECUTORS:
            raise ValueError(f"ML_PLATFORM_EXECUTOR must be one of {', '.join(EXECUTORS)}, got {executor!r}")
        parse_catalog_url(catalog_url)  # a malformed URL fails here, at start-up, naming the setting
        return cls(
            home=home,
            landing_url=env.get("ML_PLATFORM_LANDING_URL") or str(home / "landing"),
            lake_url=env.get("ML_PLATFORM_LAKE_URL") or str(home / "lake"),
            catalog_url=catalog_url,
            ops_db_url=env.get("ML_PLATFORM_OPS_DB_URL") or f"sqlite:///{home / 'ops.db'}",
            weather_api_url=env.get("ML_PLATFORM_WEATHER_API_URL") or "http://127.0.0.1:8765",
            # This home's own store, used directly, unless a server (this home's, started by
            # `make run`, or the production one) is named.
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
            mlflow_ui_url=env.get("ML_PLATFORM_MLFLOW_UI_URL") or "http://127.0.0.1:5000",
            prediction_horizon_minutes=_int(
                env, "ML_PLATFORM_PREDICTION_HORIZON_MINUTES", DEFAULT_HORIZON_MINUTES, 1, MAX_HORIZON_MINUTES
            ),
            retrain_new_days=_int(env, "ML_PLATFORM_RETRAIN_NEW_DAYS", DEFAULT_NEW_DAYS, 1, 3660),
            duckdb_memory_limit=env.get("ML_PLATFORM_DUCKDB_MEMORY_LIMIT", ""),
            redis_url=env.get("ML_PLATFORM_REDIS_URL") or "redis://127.0.0.1:6379/0",
            kafka_bootstrap=env.get("ML_PLATFORM_KAFKA_BOOTSTRAP", ""),
            landing_settle_seconds=float(env.get("ML_PLATFORM_LANDING_SETTLE_SECONDS") or 2),
            snapshot_retention_days=_int(
                env, "ML_PLATFORM_SNAPSHOT_RETENTION_DAYS", DEFAULT_SNAPSHOT_RETENTION_DAYS, 0, 3650
            ),
            executor=executor,
            celery_broker_url=env.get("ML_PLATFORM_CELERY_BROKER_URL") or DEFAULT_CELERY_BROKER_URL,
            celery_queue=env.get("ML_PLATFORM_CELERY_QUEUE") or DEFAULT_CELERY_QUEUE,
            dagster_storage_url=env.get("ML_PLATFORM_DAGSTER_STORAGE_URL", ""),
            mlflow_backend_url=env.get("ML_PLATFORM_MLFLOW_BACKEND_URL", ""),
            mlflow_artifacts_url=env.get("ML_PLATFORM_MLFLOW_ARTIFACTS_URL", ""),
        )

    @property
    def warehouse_data_url(self) -> str:
        """Where the warehouse's Parquet files go: ``<lake>/warehouse/`` (a folder, or a prefix on S3)."""
        return self.lake_url.rstrip("/") + "/warehouse/"

    @property
    def warehouse(self) -> WarehouseConfig:
        """The DuckLake warehouse: ``connect_warehouse(settings.warehouse, read_only=True)`` to read it."""
        return WarehouseConfig(self.catalog_url, self.warehouse_data_url, self.duckdb_memory_limit)

    @property
    def dagster_home(self) -> Path:
        """The Dagster instance folder: run history, sensor cursors and run keys."""
        return self.home / "dagster"
