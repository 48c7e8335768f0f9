"""The warehouse layer: staging, core and quarantine tables in DuckDB."""

import dagster as dg

from ml_platform.defs.warehouse.assets import (
    dim_airports,
    dim_carriers,
    dim_planes,
    fct_flights,
    staging_flights,
    staging_weather,
)

daily_tables = [staging_flights, staging_weather, fct_flights]

load_warehouse_job = dg.define_asset_job(
    "load_warehouse",
    selection=dg.AssetSelection.assets(*daily_tables),
    executor_def=dg.in_process_executor,
    description="Loads days (or a range of days, in one run) from the lake into the warehouse.",
)


def definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[dim_carriers, dim_airports, dim_planes, *daily_tables],
        jobs=[load_warehouse_job],
    )
