"""Every location and knob of the platform, with embedded defaults, read in one place.

Nothing here runs at import time: call ``Settings.from_env()`` where the values
are needed (the Dagster definitions loader, the CLI, tests).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


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
    retrain_new_days: int = 7
    duckdb_memory_limit: str = ""  # e.g. "4GB"; empty: DuckDB's default, 80 % of the machine

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the ``ML_PLATFORM_*`` variables; anything unset falls back to the data home."""
        env = os.environ if environ is None else environ
        home = Path(env.get("ML_PLATFORM_HOME") or REPO_ROOT / ".ml_platform").resolve()
        horizon = int(env.get("ML_PLATFORM_PREDICTION_HORIZON_MINUTES") or 60)
        if not 0 < horizon <= 24 * 60:
            raise ValueError(
                f"ML_PLATFORM_PREDICTION_HORIZON_MINUTES must be 1..1440 minutes, got {horizon}"
            )
        retrain_new_days = int(env.get("ML_PLATFORM_RETRAIN_NEW_DAYS") or 7)
        if retrain_new_days < 1:
            raise ValueError(f"ML_PLATFORM_RETRAIN_NEW_DAYS must be at least 1, got {retrain_new_days}")
        return cls(
            home=home,
            landing_url=env.get("ML_PLATFORM_LANDING_URL") or str(home / "landing"),
            lake_url=env.get("ML_PLATFORM_LAKE_URL") or str(home / "lake"),
            warehouse_path=Path(
                env.get("ML_PLATFORM_WAREHOUSE_PATH") or home / "warehouse.duckdb"
            ),
            ops_db_url=env.get("ML_PLATFORM_OPS_DB_URL") or f"sqlite:///{home / 'ops.db'}",
            weather_api_url=env.get("ML_PLATFORM_WEATHER_API_URL") or "http://127.0.0.1:8765",
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or "http://127.0.0.1:5000",
            mlflow_ui_url=env.get("ML_PLATFORM_MLFLOW_UI_URL") or "http://127.0.0.1:5000",
            prediction_horizon_minutes=horizon,
            retrain_new_days=retrain_new_days,
            duckdb_memory_limit=env.get("ML_PLATFORM_DUCKDB_MEMORY_LIMIT", ""),
        )

    @property
    def dagster_home(self) -> Path:
        """The Dagster instance folder: run history, sensor cursors and run keys."""
        return self.home / "dagster"
