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
from ml_platform.pipeline.retraining import DEFAULT_NEW_DAYS

REPO_ROOT = Path(__file__).resolve().parent.parent


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
    warehouse_path: Path
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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the ``ML_PLATFORM_*`` variables; anything unset falls back to the data home."""
        env = os.environ if environ is None else environ
        home = Path(env.get("ML_PLATFORM_HOME") or REPO_ROOT / ".ml_platform").resolve()
        return cls(
            home=home,
            landing_url=env.get("ML_PLATFORM_LANDING_URL") or str(home / "landing"),
            lake_url=env.get("ML_PLATFORM_LAKE_URL") or str(home / "lake"),
            warehouse_path=Path(env.get("ML_PLATFORM_WAREHOUSE_PATH") or home / "warehouse.duckdb"),
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
        )

    @property
    def dagster_home(self) -> Path:
        """The Dagster instance folder: run history, sensor cursors and run keys."""
        return self.home / "dagster"
