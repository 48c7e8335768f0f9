"""The warehouse's SQL, as plain functions over a DuckDB connection (no Dagster here).

Load order for a range of New York days [first, last]:

    load_dims(conn, lake)                          # core.dim_carriers, dim_airports, dim_planes
    load_staging_flights(conn, lake, first, last)  # staging.flights + quarantine.flights
    load_fct_flights(conn, first, last)            # core.fct_flights
    load_staging_weather(conn, lake, first, last)  # staging.weather + quarantine.weather

Each load replaces its range in one transaction and returns per-day counts.
See docs/warehouse_rules.md for the rules and the numbers on the real 2013 data.
"""

from ml_platform.io.warehouse import transaction
from ml_platform.pipeline.warehouse.common import Counts, LoadResult, ensure_schemas
from ml_platform.pipeline.warehouse.dims import (
    load_dim_airports,
    load_dim_carriers,
    load_dim_planes,
    load_dims,
)
from ml_platform.pipeline.warehouse.facts import load_fct_flights
from ml_platform.pipeline.warehouse.flights import load_staging_flights
from ml_platform.pipeline.warehouse.schema import SchemaChangeError, sync_columns
from ml_platform.pipeline.warehouse.weather import load_staging_weather

__all__ = [
    "Counts",
    "LoadResult",
    "SchemaChangeError",
    "ensure_schemas",
    "load_dim_airports",
    "load_dim_carriers",
    "load_dim_planes",
    "load_dims",
    "load_fct_flights",
    "load_staging_flights",
    "load_staging_weather",
    "sync_columns",
    "transaction",
]
