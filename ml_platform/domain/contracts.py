"""What each published table promises its readers, as pandera models on polars frames, and their verdict.

The warehouse quarantines rows that break these rules before it publishes, so
a failing contract on a published table means the loading code is wrong, not the
data: it is a blocking check. Integer widths follow DuckDB (INTEGER is Int32).
A verdict counts failing rows, not failing cells, and keeps a few failing rows so
a person can see what broke which rule without opening the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated

import pandera.polars as pa
import polars as pl

from ml_platform.domain.calendar import FIRST_DAY
from ml_platform.domain.flights import BOUNDS, FLIGHT_KEY, MAX_LENGTH, NYC_ORIGINS

UTC_INSTANT = Annotated[pl.Datetime, "us", "UTC"]


def _between(column: str, nullable: bool = False):
    """The column's bounds from the one rule set (``domain.flights.BOUNDS``)."""
    low, high = BOUNDS[column]
    return pa.Field(nullable=nullable, ge=low, le=high)


class StagingFlights(pa.DataFrameModel):
    """One typed, placed-in-time flight per natural key."""

    flight_date: pl.Date = pa.Field(ge=FIRST_DAY)
    carrier: pl.String = pa.Field(str_matches=r"^[A-Z0-9]{2}$")
    flight: pl.Int32 = _between("flight")
    tailnum: pl.String = pa.Field(nullable=True, str_length={"max_value": MAX_LENGTH["tailnum"]})
    origin: pl.String = pa.Field(isin=list(NYC_ORIGINS))
    dest: pl.String = pa.Field(str_matches=r"^[A-Z0-9]{3}$")
    sched_dep_time: pl.Int32 = _between("sched_dep_time")
    dep_delay: pl.Int32 = _between("dep_delay", nullable=True)
    arr_delay: pl.Int32 = _between("arr_delay", nullable=True)
    distance: pl.Int32 = _between("distance")
    sched_dep_utc: UTC_INSTANT
    sched_arr_utc: UTC_INSTANT = pa.Field(nullable=True)
    is_cancelled: pl.Boolean
    is_diverted: pl.Boolean
    _source_file: pl.String = pa.Field(alias="_source_file")

    @pa.dataframe_check(error="a cancelled flight has an actual departure")
    def cancelled_never_left(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(~pl.col("is_cancelled") | pl.col("dep_delay").is_null())

    @pa.dataframe_check(error="the natural key repeats")
    def unique_key(cls, data) -> pl.LazyFrame:
        key = list(FLIGHT_KEY)
        return data.lazyframe.select(~pl.struct(key).is_duplicated())

    class Config:
        strict = False


class FctFlights(StagingFlights):
    """A staged flight with its carrier, airports and plane, and the label."""

    carrier_name: pl.String
    dest_tzone: pl.String = pa.Field(nullable=True)
    has_plane: pl.Boolean
    has_tailnum: pl.Boolean
    seats: pl.Int32 = pa.Field(nullable=True, ge=1, le=1000)
    is_delayed: pl.Boolean = pa.Field(nullable=True)

    @pa.dataframe_check(error="cancelled or diverted flights must have no label")
    def no_label_without_arrival(cls, data) -> pl.LazyFrame:
        unlabeled = pl.col("is_cancelled") | pl.col("is_diverted")
        return data.lazyframe.select(~unlabeled | pl.col("is_delayed").is_null())


class StagingWeather(pa.DataFrameModel):
    """One weather report per airport and UTC hour, known 51 minutes past the hour."""

    origin: pl.String = pa.Field(isin=list(NYC_ORIGINS))
    observed_at_utc: UTC_INSTANT
    known_at_utc: UTC_INSTANT
    temp: pl.Float64 = pa.Field(nullable=True, ge=-60, le=130)
    humid: pl.Float64 = pa.Field(nullable=True, ge=0, le=100)
    wind_speed: pl.Float64 = pa.Field(nullable=True, ge=0, le=200)
    wind_gust: pl.Float64 = pa.Field(nullable=True, ge=0, le=250)
    pressure: pl.Float64 = pa.Field(nullable=True, ge=900, le=1100)
    visib: pl.Float64 = pa.Field(nullable=True, ge=0, le=10)
    is_imputed: pl.Boolean

    @pa.dataframe_check(error="a report is known before it was observed")
    def known_after_observed(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("known_at_utc") >= pl.col("observed_at_utc"))

    @pa.dataframe_check(error="two reports for one airport and hour")
    def unique_hour(cls, data) -> pl.LazyFrame:
        return data.lazyframe.select(~pl.struct(["origin", "observed_at_utc"]).is_duplicated())

    class Config:
        strict = False


class FlightFeatures(pa.DataFrameModel):
    """A flight as known ``horizon`` minutes before departure, with its label when it has one."""

    flight_date: pl.Date = pa.Field(ge=FIRST_DAY)
    carrier: pl.String = pa.Field(str_matches=r"^[A-Z0-9]{2}$")
    origin: pl.String = pa.Field(isin=list(NYC_ORIGINS))
    dest: pl.String = pa.Field(str_matches=r"^[A-Z]{3}$")
    predicted_at: UTC_INSTANT
    sched_dep_utc: UTC_INSTANT
    horizon_minutes: pl.Int32 = pa.Field(ge=1, le=24 * 60)
    month: pl.Int32 = pa.Field(ge=1, le=12)
    weekday: pl.Int32 = pa.Field(ge=1, le=7)
    sched_dep_hour: pl.Int32 = pa.Field(ge=0, le=24)
    distance: pl.Int32 = pa.Field(gt=0, lt=6000)
    plane_age: pl.Int32 = pa.Field(nullable=True, ge=0, le=80)
    weather_age_minutes: pl.Int32 = pa.Field(nullable=True, ge=0)
    humid: pl.Float64 = pa.Field(nullable=True, ge=0, le=100)
    wind_speed: pl.Float64 = pa.Field(nullable=True, ge=0, le=200)
    carrier_delay_rate_7d: pl.Float64 = pa.Field(nullable=True, ge=0, le=1)
    is_delayed: pl.Boolean = pa.Field(nullable=True)
    is_cancelled: pl.Boolean
    is_diverted: pl.Boolean

    @pa.dataframe_check(error="predicted_at is not the scheduled departure minus the horizon")
    def horizon_before_departure(cls, data) -> pl.LazyFrame:
        expected = pl.col("sched_dep_utc") - pl.duration(minutes=pl.col("horizon_minutes"))
        return data.lazyframe.select(pl.col("predicted_at") == expected)

    @pa.dataframe_check(error="cancelled or diverted flights must have no label")
    def no_label_without_arrival(cls, data) -> pl.LazyFrame:
        unlabeled = pl.col("is_cancelled") | pl.col("is_diverted")
        return data.lazyframe.select(~unlabeled | pl.col("is_delayed").is_null())

    class Config:
        strict = False


@dataclass(frozen=True)
class Verdict:
    """What a contract said about a frame."""

    rows: int
    failing_rows: int
    failures_by_rule: dict[str, int] = field(default_factory=dict)
    sample: list[dict] = field(default_factory=list)  # JSON-ready: dates and times as text

    @property
    def passed(self) -> bool:
        return self.failing_rows == 0


def check_contract(model: type[pa.DataFrameModel], frame: pl.DataFrame, *, sample_size: int = 5) -> Verdict:
    """Validate the collected frame (a LazyFrame would check the schema only)."""
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        rules = cases.with_columns(
            rule=pl.concat_str(pl.col("column").fill_null("<table>"), pl.lit(": "), pl.col("check"))
        )
        by_rule = dict(rules.group_by("rule").len().sort("rule").iter_rows())
        rows = rules["index"].drop_nulls().unique().sort()
        failing = rows.len() if rows.len() else len(frame)  # schema-level errors fail every row
        sample = frame[rows.head(sample_size).to_list()] if rows.len() else frame.head(0)
        return Verdict(len(frame), failing, by_rule, json.loads(sample.write_json()))
    return Verdict(len(frame), 0)


def combine(verdicts: Iterable[Verdict], *, sample_size: int = 5) -> Verdict:
    """One verdict for a table checked in parts of whole days (no key spans two parts)."""
    rows = failing = 0
    by_rule: dict[str, int] = {}
    sample: list[dict] = []
    for v in verdicts:
        rows, failing = rows + v.rows, failing + v.failing_rows
        for rule, n in v.failures_by_rule.items():
            by_rule[rule] = by_rule.get(rule, 0) + n
        sample += v.sample[: sample_size - len(sample)]
    return Verdict(rows, failing, dict(sorted(by_rule.items())), sample)
