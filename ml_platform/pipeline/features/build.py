"""Build ``features.flight_features`` for a range of New York days, in one transaction.

``build_flight_features(conn, first, last, horizon_minutes=60)`` deletes the
range's rows and inserts them again with ``INSERT ... SELECT`` (the SELECT is
``sql.FEATURES_SQL``), one statement per run of consecutive days holding at most
``MAX_FLIGHTS_PER_STATEMENT`` flights (the whole real year is one statement), never
a loop over single days or flights. The history a day needs (flights of the 32 days
before it, weather of the 3 days before it) is read from the warehouse, whatever
days are loaded.

The table holds one row per flight of ``core.fct_flights``: the build refuses to
commit (and changes nothing) if a day's feature rows would not match its facts.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass

import duckdb

from ml_platform.domain.calendar import check_range, days_between
from ml_platform.domain.features import COLUMNS, DEFAULT_HORIZON_MINUTES, MAX_HORIZON_MINUTES, TABLE
from ml_platform.io.warehouse import run_ddl, transaction
from ml_platform.pipeline.features.holidays import holidays_around
from ml_platform.pipeline.features.sql import FEATURES_SQL, HISTORY_LOOKBACK_DAYS, WEATHER_LOOKBACK_DAYS
from ml_platform.pipeline.warehouse.common import ensure_schemas, rows_per_day, runs_of_days
from ml_platform.pipeline.warehouse.schema import ensure_table, table_columns

# Bounds the memory of one build, whatever the length of the range: at 10 times the real
# year, 400,000-flight statements ran in 34 s at a 1 GB DuckDB memory limit (1.4 GB peak),
# where one statement needed more than 1.5 GB and took 42 s (benchmarks/results).
MAX_FLIGHTS_PER_STATEMENT = 400_000


@dataclass(frozen=True)
class FeatureBuildResult:
    """What one build wrote: feature rows per New York day (every day of the range listed)."""

    first: dt.date
    last: dt.date
    horizon_minutes: int
    days: Mapping[dt.date, int]
    seconds: float
    added_columns: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return sum(self.days.values())

    def to_dict(self) -> dict:
        return {
            "table": TABLE,
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "horizon_minutes": self.horizon_minutes,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "added_columns": list(self.added_columns),
        }


def create_table(conn: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """Create ``features.flight_features`` if needed; add columns a newer version defines. Returns the added ones."""
    ensure_schemas(conn, ("features",))
    ensure_table(conn, TABLE, COLUMNS)
    present = table_columns(conn, TABLE)
    added = tuple(c for c in COLUMNS if c not in present)
    if added:
        run_ddl(conn, *(f"ALTER TABLE {TABLE} ADD COLUMN {column} {COLUMNS[column]}" for column in added))
    return added


def query_parameters(first: dt.date, last: dt.date, horizon_minutes: int) -> dict:
    """The bound parameters of ``FEATURES_SQL`` for a range."""
    return {
        "first": first,
        "last": last,
        "horizon": horizon_minutes,
        "flights_from": first - dt.timedelta(days=HISTORY_LOOKBACK_DAYS),
        "weather_from": first - dt.timedelta(days=WEATHER_LOOKBACK_DAYS),
        "holidays": holidays_around(first, last),
    }


def build_flight_features(
    conn: duckdb.DuckDBPyConnection,
    first: dt.date,
    last: dt.date,
    *,
    horizon_minutes: int = DEFAULT_HORIZON_MINUTES,
) -> FeatureBuildResult:
    """Replace the features of the flights of [first, last] (New York days, inclusive).

    Needs ``core.fct_flights`` and ``staging.weather`` (see docs/warehouse_rules.md).
    Pass a connection that is not inside a transaction: the build begins its own.
    """
    started = time.perf_counter()
    check_range(first, last)
    if not isinstance(horizon_minutes, int) or not 0 < horizon_minutes <= MAX_HORIZON_MINUTES:
        raise ValueError(f"horizon_minutes must be 1..{MAX_HORIZON_MINUTES}, got {horizon_minutes!r}")
    for source in ("core.fct_flights", "staging.weather"):
        if not table_columns(conn, source):
            raise RuntimeError(f"{source} does not exist: load the warehouse before building features")
    added = create_table(conn)
    range_params = {"first": first, "last": last}
    with transaction(conn):
        conn.execute(f"DELETE FROM {TABLE} WHERE flight_date BETWEEN $first AND $last", range_params)
        facts = rows_per_day(conn, "core.fct_flights", "flight_date", first, last)
        for start, end in runs_of_days(facts, first, last, MAX_FLIGHTS_PER_STATEMENT):
            conn.execute(
                f"INSERT INTO {TABLE} BY NAME {FEATURES_SQL} ORDER BY flight_date, origin, sched_dep_time, carrier, flight",
                query_parameters(start, end, horizon_minutes),
            )
        written = rows_per_day(conn, TABLE, "flight_date", first, last)
        if facts != written:  # a join that repeats or loses flights is a bug: keep the previous rows
            wrong = sorted(d for d in facts.keys() | written.keys() if facts.get(d) != written.get(d))
            raise RuntimeError(f"{TABLE} would not have one row per flight on {wrong[:5]}; nothing was changed")
    days = {d: written.get(d, 0) for d in days_between(first, last)}
    return FeatureBuildResult(first, last, horizon_minutes, days, time.perf_counter() - started, added)
