"""Hourly weather at the three New York airports, fetched per local day from the weather API."""

import datetime as dt

import dagster as dg
import polars as pl

from ml_platform.defs.keys import RAW_WEATHER, WEATHER_API
from ml_platform.defs.metadata import add_daily_metadata, add_table_schema
from ml_platform.defs.partitions import daily_partitions
from ml_platform.defs.resources import StoreResource, WeatherApiResource
from ml_platform.domain.weather import RAW_WEATHER_SCHEMA
from ml_platform.io.weather_client import WeatherApiError
from ml_platform.pipeline import lake

weather_api = dg.AssetSpec(
    WEATHER_API,
    group_name="sources",
    kinds={"api"},
    owners=["team:data-platform"],
    description="The hourly weather HTTP API (ML_PLATFORM_WEATHER_API_URL): one report per "
    "airport and hour. The reference data ends 2013-12-30 18:00 New York time.",
)


@dg.asset(
    key=RAW_WEATHER,
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
            rows = weather.client().fetch_day(day)
        except WeatherApiError as e:
            raise dg.Failure(description=f"Weather for {day} could not be fetched: {e}") from e
        frame = pl.from_dicts(rows, schema=RAW_WEATHER_SCHEMA).with_columns(
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
