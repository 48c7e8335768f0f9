"""The platform's Definitions, assembled from each layer under ``defs/``.

Settings are read when Dagster loads the code location, not at import time.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from ml_platform.defs import features, lake, models, warehouse
from ml_platform.defs.automation import automation_sensor
from ml_platform.defs.full_refresh import full_refresh_job
from ml_platform.defs.resources import (
    FeatureSettings,
    LandingZoneResource,
    MLflowResource,
    OpsDatabaseResource,
    RetrainPolicyConfig,
    StoreResource,
    WeatherApiResource,
)
from ml_platform.settings import Settings


def resources(settings: Settings) -> dict:
    return {
        "landing": LandingZoneResource(url=settings.landing_url, settle_seconds=settings.landing_settle_seconds),
        "lake_store": StoreResource(url=settings.lake_url),
        "ops_database": OpsDatabaseResource(url=settings.ops_db_url),
        "weather": WeatherApiResource(base_url=settings.weather_api_url),
        "warehouse": DuckDBResource(
            database=str(settings.warehouse_path),
            connection_config={"memory_limit": settings.duckdb_memory_limit} if settings.duckdb_memory_limit else {},
        ),
        "mlflow_tracking": MLflowResource(
            tracking_uri=settings.mlflow_tracking_uri, ui_url=settings.mlflow_ui_url, home=str(settings.home)
        ),
        "feature_settings": FeatureSettings(prediction_horizon_minutes=settings.prediction_horizon_minutes),
        "retrain_policy": RetrainPolicyConfig(new_days=settings.retrain_new_days),
    }


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        lake.definitions(),
        warehouse.definitions(),
        features.definitions(),
        models.definitions(),
        dg.Definitions(
            jobs=[full_refresh_job],
            sensors=[automation_sensor],
            resources=resources(Settings.from_env()),
            # Automation's runs too: a step in its own process costs 3-5 s and buys nothing here.
            executor=dg.in_process_executor,
        ),
    )
