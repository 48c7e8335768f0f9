"""The platform's Definitions, assembled from each layer under ``defs/``.

Settings are read when Dagster loads the code location, not at import time.
"""

import dagster as dg

from ml_platform.defs import features, lake, models, serving, warehouse
from ml_platform.defs.automation import automation_sensor
from ml_platform.defs.full_refresh import full_refresh_job
from ml_platform.defs.resources import (
    FeatureSettings,
    LandingZoneResource,
    MLflowResource,
    OnlineStoreResource,
    OpsDatabaseResource,
    RetrainPolicyConfig,
    StoreResource,
    WarehouseResource,
    WeatherApiResource,
)
from ml_platform.ops import production
from ml_platform.serving.online_store import key_prefix_for_home
from ml_platform.settings import Settings


def resources(settings: Settings) -> dict:
    return {
        "landing": LandingZoneResource(url=settings.landing_url, settle_seconds=settings.landing_settle_seconds),
        "lake_store": StoreResource(url=settings.lake_url),
        "ops_database": OpsDatabaseResource(url=settings.ops_db_url),
        "weather": WeatherApiResource(base_url=settings.weather_api_url),
        "warehouse": WarehouseResource(
            catalog_url=settings.catalog_url,
            data_url=settings.warehouse_data_url,
            memory_limit=settings.duckdb_memory_limit,
            snapshot_retention_days=settings.snapshot_retention_days,
        ),
        "mlflow_tracking": MLflowResource(
            tracking_uri=settings.mlflow_tracking_uri, ui_url=settings.mlflow_ui_url, home=str(settings.home)
        ),
        "feature_settings": FeatureSettings(prediction_horizon_minutes=settings.prediction_horizon_minutes),
        "retrain_policy": RetrainPolicyConfig(new_days=settings.retrain_new_days),
        "online_store": OnlineStoreResource(url=settings.redis_url, prefix=key_prefix_for_home(settings.home)),
    }


@dg.definitions
def defs() -> dg.Definitions:
    settings = Settings.from_env()
    return dg.Definitions.merge(
        lake.definitions(),
        warehouse.definitions(),
        features.definitions(),
        models.definitions(),
        serving.definitions(),
        dg.Definitions(
            jobs=[full_refresh_job],
            sensors=[automation_sensor],
            # With steps on Celery workers (production profile), values that cross steps go through S3.
            resources={**resources(settings), **production.step_io_manager(settings)},
            # Embedded, automation's runs too are in process: a step in its own process costs 3-5 s and
            # buys nothing there. `up --profile production` sets ML_PLATFORM_EXECUTOR=celery.
            executor=production.executor_for(settings),
        ),
    )
