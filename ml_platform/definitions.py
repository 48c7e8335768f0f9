"""The platform's Definitions, assembled from each layer under ``defs/``.

Settings are read when Dagster loads the code location, not at import time.
"""

import dagster as dg

from dagster_duckdb import DuckDBResource

from ml_platform.defs import lake, warehouse
from ml_platform.defs.automation import automation_sensor
from ml_platform.defs.resources import OpsDatabaseResource, StoreResource, WeatherApiResource
from ml_platform.settings import Settings


def resources(settings: Settings) -> dict:
    return {
        "landing": StoreResource(url=settings.landing_url),
        "lake_store": StoreResource(url=settings.lake_url),
        "ops_database": OpsDatabaseResource(url=settings.ops_db_url),
        "weather": WeatherApiResource(base_url=settings.weather_api_url),
        "warehouse": DuckDBResource(database=str(settings.warehouse_path)),
    }


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        lake.definitions(),
        warehouse.definitions(),
        dg.Definitions(sensors=[automation_sensor], resources=resources(Settings.from_env())),
    )
