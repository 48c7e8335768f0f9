"""Hourly weather at the New York airports, as the weather API serves it."""

from __future__ import annotations

import polars as pl

# A row of the API: the airport, its local clock hour, the measures, and the UTC hour it stands for.
RAW_WEATHER_SCHEMA = {
    "origin": pl.String,
    "year": pl.Int64,
    "month": pl.Int64,
    "day": pl.Int64,
    "hour": pl.Int64,
    **{c: pl.Float64 for c in ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust")},
    **{c: pl.Float64 for c in ("precip", "pressure", "visib")},
    "time_hour": pl.String,
}

# An hourly report is known at minute 51 of its hour (the routine METAR report time).
KNOWN_AFTER_MINUTES = 51
