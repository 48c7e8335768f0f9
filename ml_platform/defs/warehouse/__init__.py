"""The warehouse layer: staging, core and quarantine tables in a DuckLake, and its nightly maintenance."""

import dagster as dg

from ml_platform.defs.warehouse.assets import (
    dim_airports,
    dim_carriers,
    dim_planes,
    fct_flights,
    staging_flights,
    staging_weather,
)
from ml_platform.defs.warehouse.maintenance import maintain_warehouse_job, nightly_maintenance, warehouse_maintenance

daily_tables = [staging_flights, staging_weather, fct_flights]

load_warehouse_job = dg.define_asset_job(
    "load_warehouse",
    selection=dg.AssetSelection.assets(*daily_tables),
    description="Loads days (or a range of days, in one run) from the lake into the warehouse.",
)


def definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[dim_carriers, dim_airports, dim_planes, *daily_tables, warehouse_maintenance],
        jobs=[load_warehouse_job, maintain_warehouse_job],
        schedules=[nightly_maintenance],
    )
