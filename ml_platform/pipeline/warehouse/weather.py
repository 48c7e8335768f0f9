"""``staging.weather``: one weather report per New York airport and hour, cleaned and gap-filled.

Keyed on (origin, ``observed_at_utc``): UTC, because local hours repeat when clocks
go back (2013-11-03 has two 01:00 reports per airport). ``observed_at_local`` is the
New York wall clock, ``weather_date`` the New York day (the lake partition).
``known_at_utc`` is when the report was available: minute 51 of its hour, the
routine report time.

Cleaning, in this order:

* impossible values become NULL, with ``has_impossible_value`` and the column names in
  ``impossible_columns`` (comma-separated): bounds in ``BOUNDS`` (e.g. the 1,048 mph
  wind_speed at EWR on 2013-02-12 03:00 local).
* a missing ``wind_gust`` means no gust was reported, so it is 0 (an impossible gust
  stays NULL: unknown, not calm).
* a gap of 1 to 3 missing hours (``MAX_GAP_HOURS``) between two reports of an airport
  is filled with rows marked ``is_imputed``: numbers linearly interpolated between the
  two reports, ``wind_dir`` copied from the nearer report (the earlier on a tie). An
  imputed hour depends on the report after the gap, so its ``known_at_utc`` is that
  report's. Longer gaps stay missing: those hours have no row.

To see gaps that cross the range's edges, one extra day on each side is read from
the lake when present; only the requested days are written. Raw rows that can not be
keyed go to ``quarantine.weather`` (rules in ``RULES``, first failing one wins).
"""

from __future__ import annotations

import datetime as dt
import time

import duckdb

from ml_platform.domain.calendar import NEW_YORK, check_range
from ml_platform.domain.flights import NYC_ORIGINS
from ml_platform.domain.weather import KNOWN_AFTER_MINUTES
from ml_platform.io.warehouse import quoted, sql_string, transaction
from ml_platform.pipeline.warehouse.common import LoadResult, counts_by_day, ensure_schemas, lake_files
from ml_platform.pipeline.warehouse.flights import extra_column_name
from ml_platform.pipeline.warehouse.schema import SchemaChangeError, check_raw_files, ensure_table, sync_columns

TABLE = "staging.weather"
QUARANTINE = "quarantine.weather"
_TEMP, _ROWS = "_wh_weather", "_wh_weather_rows"

MAX_GAP_HOURS = 3
TIME_HOUR_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
RULES = ("missing_key", "bad_type", "out_of_range", "unknown_origin", "date_mismatch", "duplicate_key")
# Physically possible values (US units: F, %, degrees, mph, inches, millibars, miles).
BOUNDS = {
    "temp": (-60, 130),
    "dewp": (-60, 130),
    "humid": (0, 100),
    "wind_dir": (0, 360),
    "wind_speed": (0, 200),
    "wind_gust": (0, 250),
    "precip": (0, 10),
    "pressure": (900, 1100),
    "visib": (0, 10),
}
MEASURES = tuple(BOUNDS)

_NUMBERS = ("DOUBLE", "FLOAT", "TINYINT", "SMALLINT", "INTEGER", "BIGINT")
RAW_CONTRACT: dict[str, tuple[str, ...]] = {
    "origin": ("VARCHAR",),
    "time_hour": ("VARCHAR",),
    **{c: _NUMBERS for c in ("year", "month", "day", "hour", *MEASURES)},
    "_fetched_at": ("TIMESTAMP WITH TIME ZONE",),
    "_source_url": ("VARCHAR",),
}
REQUIRED_RAW_COLUMNS = ("origin", "time_hour", *MEASURES)

STAGING_COLUMNS = {
    "weather_date": "DATE",
    "origin": "VARCHAR",
    "observed_at_utc": "TIMESTAMP WITH TIME ZONE",
    "observed_at_local": "TIMESTAMP",
    "known_at_utc": "TIMESTAMP WITH TIME ZONE",
    **{c: "DOUBLE" for c in MEASURES},
    "is_imputed": "BOOLEAN",
    "has_impossible_value": "BOOLEAN",
    "impossible_columns": "VARCHAR",
    "_fetched_at": "TIMESTAMP WITH TIME ZONE",
    "_source_url": "VARCHAR",
}
QUARANTINE_COLUMNS = {
    "rule": "VARCHAR",
    "detail": "VARCHAR",
    "weather_date": "DATE",
    "_fetched_at": "TIMESTAMP WITH TIME ZONE",
    "_source_url": "VARCHAR",
    "raw_values": "VARCHAR",
}


def create_tables(conn: duckdb.DuckDBPyConnection) -> None:
    ensure_schemas(conn)
    ensure_table(conn, TABLE, STAGING_COLUMNS)
    ensure_table(conn, QUARANTINE, QUARANTINE_COLUMNS)


def _raw_select(present: dict[str, str], extras: dict[str, str], files: list[str]) -> str:
    def col(name: str, sql_type: str) -> str:
        return f"CAST({name} AS {sql_type})" if name in present else f"CAST(NULL AS {sql_type})"

    cols = [
        "CAST(date AS DATE) AS weather_date",
        "origin AS raw_origin",
        "time_hour AS raw_time_hour",
        *(f"{col(c, 'DOUBLE')} AS raw_{c}" for c in MEASURES),
        f"{col('_fetched_at', 'TIMESTAMP WITH TIME ZONE')} AS _fetched_at",
        f"{col('_source_url', 'VARCHAR')} AS _source_url",
        "filename AS _file",
        "file_row_number AS _row",
        *(f"CAST({quoted(raw)} AS VARCHAR) AS {name}" for name, raw in extras.items()),
    ]
    if files:
        source = (
            "read_parquet($files, hive_partitioning = true, hive_types = {'date': DATE}, "
            "union_by_name = true, filename = true, file_row_number = true)"
        )
    else:
        empty = ", ".join(
            ["CAST(NULL AS DATE) AS date", "CAST(NULL AS VARCHAR) AS origin", "CAST(NULL AS VARCHAR) AS time_hour"]
            + [f"CAST(NULL AS DOUBLE) AS {c}" for c in MEASURES]
            + ["CAST(NULL AS VARCHAR) AS filename", "CAST(NULL AS BIGINT) AS file_row_number"]
        )
        source = f"(SELECT {empty} WHERE false)"
    return f"SELECT {', '.join(cols)} FROM {source}"


def _classify_sql(raw_select: str) -> str:
    """Every raw row of the widened range with its rule, its UTC hour and cleaned values."""
    nyc = ", ".join(sql_string(o) for o in NYC_ORIGINS)
    ny = sql_string(NEW_YORK)
    cleaned = ",\n".join(
        f"CASE WHEN raw_{c} BETWEEN {lo} AND {hi} THEN raw_{c} END AS {c}"
        for c, (lo, hi) in BOUNDS.items()
        if c != "wind_gust"
    )
    lo, hi = BOUNDS["wind_gust"]
    impossible = ", ".join(
        f"CASE WHEN NOT (raw_{c} BETWEEN {lo_} AND {hi_}) THEN '{c}' END" for c, (lo_, hi_) in BOUNDS.items()
    )
    raw_json = ", ".join(["origin := raw_origin", "time_hour := raw_time_hour"] + [f"{c} := raw_{c}" for c in MEASURES])
    return f"""
        WITH raw AS ({raw_select}),
        parsed AS (
            SELECT *, NULLIF(trim(raw_origin), '') AS origin,
                try_strptime(raw_time_hour, '{TIME_HOUR_FORMAT}') AS _obs  -- naive UTC
            FROM raw
        ),
        ruled AS (
            SELECT *, CASE
                WHEN origin IS NULL OR raw_time_hour IS NULL THEN 'missing_key'
                WHEN _obs IS NULL THEN 'bad_type'
                WHEN minute(_obs) <> 0 OR second(_obs) <> 0 THEN 'out_of_range'
                WHEN origin NOT IN ({nyc}) THEN 'unknown_origin'
                WHEN CAST(timezone({ny}, timezone('UTC', _obs)) AS DATE) <> weather_date THEN 'date_mismatch'
            END AS _rule
            FROM parsed
        ),
        ranked AS (
            SELECT *,
                CASE WHEN _rule IS NULL THEN row_number() OVER k END AS _rank,
                first_value(_fetched_at) OVER k AS _kept_fetched_at
            FROM ruled
            WINDOW k AS (PARTITION BY _rule IS NULL, origin, _obs ORDER BY _fetched_at DESC NULLS LAST, _file, _row)
        )
        SELECT *,
            coalesce(_rule, CASE WHEN _rank > 1 THEN 'duplicate_key' END) AS rule,
            CASE rule
                WHEN 'missing_key' THEN 'origin or time_hour is empty'
                WHEN 'bad_type' THEN 'time_hour=' || raw_time_hour || ' is not YYYY-MM-DDTHH:MM:SSZ'
                WHEN 'out_of_range' THEN 'time_hour=' || raw_time_hour || ' is not on the hour'
                WHEN 'unknown_origin' THEN 'origin ' || origin || ' is not a New York airport'
                WHEN 'date_mismatch' THEN
                    'time_hour=' || raw_time_hour || ' is not in the New York day ' || weather_date
                WHEN 'duplicate_key' THEN 'another report for ' || origin || ' ' || raw_time_hour
                    || ' was kept (fetched at ' || coalesce(CAST(_kept_fetched_at AS VARCHAR), '?') || ')'
            END AS detail,
            {cleaned},
            CASE WHEN raw_wind_gust IS NULL THEN 0
                 WHEN raw_wind_gust BETWEEN {lo} AND {hi} THEN raw_wind_gust END AS wind_gust,
            NULLIF(concat_ws(',', {impossible}), '') AS impossible_columns,
            CAST(to_json(struct_pack({raw_json})) AS VARCHAR) AS raw_values
        FROM ranked
    """


def _rows_sql(extras: list[str]) -> str:
    """Reported rows of the range plus imputed hours filling short gaps (columns of staging.weather)."""
    ny = sql_string(NEW_YORK)
    leads = ", ".join(f"lead({c}) OVER w AS _next_{c}" for c in MEASURES)
    interpolated = ", ".join(
        f"{c} + (_next_{c} - {c}) * k / (_missing + 1) AS {c}" for c in MEASURES if c != "wind_dir"
    )
    measures = ", ".join(MEASURES)
    extra_cols = "".join(f", {e}" for e in extras)
    extra_nulls = "".join(f", CAST(NULL AS VARCHAR) AS {e}" for e in extras)
    return f"""
        WITH valid AS (SELECT * FROM {_TEMP} WHERE rule IS NULL),
        reported AS (
            SELECT origin, _obs, {measures}, false AS is_imputed,
                impossible_columns IS NOT NULL AS has_impossible_value, impossible_columns,
                _obs AS _known_obs, _fetched_at, _source_url{extra_cols}
            FROM valid
        ),
        gaps AS (
            SELECT *, datediff('hour', _obs, _next_obs) - 1 AS _missing
            FROM (SELECT origin, _obs, {measures}, lead(_obs) OVER w AS _next_obs, {leads}
                  FROM valid WINDOW w AS (PARTITION BY origin ORDER BY _obs))
            WHERE datediff('hour', _obs, _next_obs) - 1 BETWEEN 1 AND {MAX_GAP_HOURS}
        ),
        hours AS (SELECT *, unnest(generate_series(1, _missing)) AS k FROM gaps),
        imputed AS (
            SELECT origin, _obs + to_hours(k) AS _obs, {interpolated},
                CASE WHEN 2 * k <= _missing + 1 THEN wind_dir ELSE _next_wind_dir END AS wind_dir,
                true AS is_imputed, false AS has_impossible_value, CAST(NULL AS VARCHAR) AS impossible_columns,
                _next_obs AS _known_obs, CAST(NULL AS TIMESTAMP WITH TIME ZONE) AS _fetched_at,
                CAST(NULL AS VARCHAR) AS _source_url{extra_nulls}
            FROM hours
        ),
        both_ AS (SELECT * FROM reported UNION ALL BY NAME SELECT * FROM imputed),
        placed AS (
            SELECT *, timezone('UTC', _obs) AS observed_at_utc,
                timezone({ny}, observed_at_utc) AS observed_at_local
            FROM both_
        )
        SELECT CAST(observed_at_local AS DATE) AS weather_date, origin, observed_at_utc, observed_at_local,
            timezone('UTC', _known_obs) + to_minutes({KNOWN_AFTER_MINUTES}) AS known_at_utc,
            {measures}, is_imputed, has_impossible_value, impossible_columns, _fetched_at, _source_url{extra_cols}
        FROM placed
        WHERE CAST(observed_at_local AS DATE) BETWEEN $first AND $last
    """


def load_staging_weather(conn: duckdb.DuckDBPyConnection, lake: str, first: dt.date, last: dt.date) -> LoadResult:
    """Replace the weather of [first, last] (and its quarantine) from ``<lake>/raw/weather``, in one transaction.

    Per day: input rows = loaded + quarantined; ``added_rows`` counts the imputed hours.
    """
    started = time.perf_counter()
    check_range(first, last)
    create_tables(conn)
    files = lake_files(conn, lake, "weather", first - dt.timedelta(days=1), last + dt.timedelta(days=1))
    present = check_raw_files(conn, files, RAW_CONTRACT, REQUIRED_RAW_COLUMNS)
    extras = {extra_column_name(c): c for c in sorted(present) if c not in RAW_CONTRACT}
    if "date" in present:
        raise SchemaChangeError("date", "a raw column named date clashes with the date= partition")
    params = {"first": first, "last": last}
    try:
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE {_TEMP} AS {_classify_sql(_raw_select(present, extras, files))}",
            {"files": files} if files else None,
        )
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {_ROWS} AS {_rows_sql(list(extras))}", params)
        in_range = "weather_date BETWEEN $first AND $last"
        with transaction(conn):
            added = sync_columns(conn, TABLE, f"SELECT * FROM {_ROWS}", required=STAGING_COLUMNS)
            conn.execute(f"DELETE FROM {TABLE} WHERE {in_range}", params)
            conn.execute(f"DELETE FROM {QUARANTINE} WHERE {in_range}", params)
            conn.execute(f"INSERT INTO {TABLE} BY NAME SELECT * FROM {_ROWS} ORDER BY observed_at_utc, origin")
            conn.execute(
                f"""
                INSERT INTO {QUARANTINE} BY NAME
                SELECT rule, detail, weather_date, _fetched_at, _source_url, raw_values FROM {_TEMP}
                WHERE rule IS NOT NULL AND {in_range} ORDER BY weather_date, _file, _row
                """,
                params,
            )
        days = counts_by_day(
            conn,
            f"""
            SELECT weather_date, rule, false, count(*) FROM {_TEMP} WHERE {in_range} GROUP BY ALL
            UNION ALL
            SELECT weather_date, NULL, true, count(*) FROM {_ROWS} WHERE is_imputed GROUP BY ALL
            """,
            params,
            first,
            last,
        )
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {_TEMP}")
        conn.execute(f"DROP TABLE IF EXISTS {_ROWS}")
    return LoadResult(TABLE, first, last, days, time.perf_counter() - started, tuple(added))
