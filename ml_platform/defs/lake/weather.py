"""Hourly weather at the three New York airports, fetched per local day from the weather API."""


import datetime as dt

import dagster as dg
import polars as pl

from ml_platform.defs.metadata import add_daily_metadata, add_table_schema
from ml_platform.defs.partitions import daily_partitions
from ml_platform.defs.resources import StoreResource, WeatherApiResource
from ml_platform.lib import lake
from ml_platform.lib.weather_api import WeatherApiError, fetch_weather_day

weather_api = dg.AssetSpec(
    "weather_api",
    group_name="sources",
    kinds={"api"},
    owners=["team:data-platform"],
    description="The hourly weather HTTP API (ML_PLATFORM_WEATHER_API_URL): one report per "
    "airport and hour. The reference data ends 2013-12-30 18:00 New York time.",
)

WEATHER_SCHEMA = {
    "origin": pl.String,
    "year": pl.Int64,
    "month": pl.Int64,
    "day": pl.Int64,
    "hour": pl.Int64,
    **{c: pl.Float64 for c in ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust")},
    **{c: pl.Float64 for c in ("precip", "pressure", "visib")},
    "time_hour": pl.String,
}


@dg.asset(
    deps=[weather_api],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="lake",
    kinds={"parquet", "api"},
    owners=["team:data-platform"],
)
def raw_weather(
    context: dg.AssetExecutionContext, weather: WeatherApiResource, lake_store: StoreResource
) -> dg.MaterializeResult:
    """The weather reports of each New York day (local midnight to midnight) as the API served
    them, one row per airport and hour. Fetched whenever that day's flights land."""
    lake_zone = lake_store.store()
    fetched_at = dt.datetime.now(dt.UTC)
    per_day, frames = {}, []
    for key in context.partition_keys:
        day = dt.date.fromisoformat(key)
        try:
            rows = fetch_weather_day(
                weather.base_url, day, timeout=weather.timeout_seconds, retries=weather.retries
            )
        except WeatherApiError as e:
            raise dg.Failure(description=f"Weather for {day} could not be fetched: {e}") from e
        frame = pl.from_dicts(rows, schema=WEATHER_SCHEMA).with_columns(
            pl.lit(fetched_at).alias("_fetched_at"),
            pl.lit(weather.base_url).alias("_source_url"),
        )
        if frame.is_empty():
            context.log.warning("The weather API has no reports for %s", day)
        lake.write_partition(lake_zone, "weather", day, frame)
        per_day[key] = {"dagster/row_count": frame.height}
        frames.append(frame)
    add_daily_metadata(context, per_day)
    sample = pl.concat(frames)
    add_table_schema(context, max(per_day), sample)
    return dg.MaterializeResult(
        metadata={
            "origins": sorted(sample["origin"].unique().to_list()),
            "source_url": weather.base_url,
        }
    )
