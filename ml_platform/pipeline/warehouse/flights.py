"""``staging.flights``: every flight the airline reported, typed, placed in time, deduplicated.

One row per flight (flight_date, carrier, flight, origin, sched_dep_time), where
``flight_date`` is the New York day of the raw partition it came in. Times:

* the source gives local wall-clock ``hhmm`` integers; ``2400`` is midnight at the END
  of the day (the next day's 00:00).
* ``*_local`` columns are naive TIMESTAMPs on the wall clock of the airport concerned
  (the origin for departures, the destination for arrivals); ``*_utc`` columns are
  TIMESTAMPTZ instants (shown in the session's time zone, compared as instants).
  Zones come from ``core.dim_airports.tzone``.
* scheduled departure = flight_date + sched_dep_time at the origin.
* scheduled arrival = the FIRST time after the scheduled departure instant at which
  the destination's clock shows sched_arr_time (a duration in [0, 24 h)); this is right
  for overnight flights and for Hawaii, where the hhmm comparison alone is not.
* actual departure = scheduled departure + dep_delay; actual arrival = scheduled
  arrival + arr_delay; NULL where the delay is unknown.
* ``is_cancelled``: no dep_time. ``is_diverted``: departed but no arr_delay.

Rows breaking the contract (see ``flight_rules.py``) go to ``quarantine.flights``. A raw
column the warehouse does not know yet is kept as ``VARCHAR extra_<name>``.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import replace

import duckdb

from ml_platform.domain.calendar import check_range
from ml_platform.io.warehouse import quoted, transaction
from ml_platform.pipeline.warehouse import flight_rules as contract
from ml_platform.pipeline.warehouse.common import (
    LoadResult,
    counts_by_day,
    ensure_schemas,
    known_zones,
    lake_files,
    zone_convert_sql,
)
from ml_platform.pipeline.warehouse.schema import (
    EXTRA_PREFIX,
    SchemaChangeError,
    check_raw_files,
    ensure_table,
    sync_columns,
    table_columns,
)

TABLE = "staging.flights"
QUARANTINE = "quarantine.flights"
_TEMP = "_wh_flights"

STAGING_COLUMNS = {
    "flight_date": "DATE",
    "year": "INTEGER",
    "month": "INTEGER",
    "day": "INTEGER",
    "carrier": "VARCHAR",
    "flight": "INTEGER",
    "tailnum": "VARCHAR",
    "origin": "VARCHAR",
    "dest": "VARCHAR",
    "sched_dep_time": "INTEGER",
    "dep_time": "INTEGER",
    "dep_delay": "INTEGER",
    "sched_arr_time": "INTEGER",
    "arr_time": "INTEGER",
    "arr_delay": "INTEGER",
    "air_time": "INTEGER",
    "distance": "INTEGER",
    "hour": "INTEGER",
    "minute": "INTEGER",
    "time_hour": "TIMESTAMP WITH TIME ZONE",
    "sched_dep_local": "TIMESTAMP",
    "sched_dep_utc": "TIMESTAMP WITH TIME ZONE",
    "actual_dep_local": "TIMESTAMP",
    "actual_dep_utc": "TIMESTAMP WITH TIME ZONE",
    "sched_arr_local": "TIMESTAMP",
    "sched_arr_utc": "TIMESTAMP WITH TIME ZONE",
    "actual_arr_local": "TIMESTAMP",
    "actual_arr_utc": "TIMESTAMP WITH TIME ZONE",
    "is_cancelled": "BOOLEAN",
    "is_diverted": "BOOLEAN",
    "_source_file": "VARCHAR",
    "_source_sha256": "VARCHAR",
    "_source_line": "INTEGER",
}
QUARANTINE_COLUMNS = {
    "rule": "VARCHAR",
    "detail": "VARCHAR",
    "flight_date": "DATE",
    "_source_file": "VARCHAR",
    "_source_line": "INTEGER",
    "_source_sha256": "VARCHAR",
    "raw_values": "VARCHAR",  # JSON object of every raw source column, as text
}


def create_tables(conn: duckdb.DuckDBPyConnection) -> None:
    ensure_schemas(conn)
    ensure_table(conn, TABLE, STAGING_COLUMNS)
    ensure_table(conn, QUARANTINE, QUARANTINE_COLUMNS)


def extra_column_name(raw_name: str) -> str:
    """``extra_<name>``: the raw name lower-cased, anything but ``[a-z0-9_]`` turned into ``_``."""
    return EXTRA_PREFIX + re.sub(r"[^a-z0-9_]", "_", raw_name.strip().lower())


def _raw_source(conn: duckdb.DuckDBPyConnection, files: list[str]) -> tuple[str, dict[str, str]]:
    """The FROM clause over the range's raw files and ``{extra column: raw name}``; checks the contract."""
    present = check_raw_files(conn, files, contract.RAW_CONTRACT, contract.REQUIRED_RAW_COLUMNS)
    extras_raw = sorted(c for c in present if c not in contract.RAW_CONTRACT)
    if "date" in extras_raw:
        raise SchemaChangeError("date", "a raw column named date clashes with the date= partition")
    extras = {extra_column_name(r): r for r in extras_raw}
    if len(extras) != len(extras_raw):
        raise SchemaChangeError(", ".join(extras_raw), "new raw columns collide once named extra_<name>")
    cols = ["CAST(date AS DATE) AS flight_date"]
    for c in contract.SOURCE_COLUMNS:
        cols.append(f"{c} AS raw_{c}" if c in present else f"CAST(NULL AS VARCHAR) AS raw_{c}")
    cols += [f"CAST({quoted(raw)} AS VARCHAR) AS {name}" for name, raw in extras.items()]
    cols += [
        "_source_file",
        "_source_sha256" if "_source_sha256" in present else "CAST(NULL AS VARCHAR) AS _source_sha256",
        "CAST(_source_line AS INTEGER) AS _source_line",
        "_parse_error" if "_parse_error" in present else "CAST(NULL AS VARCHAR) AS _parse_error",
        "CAST(_source_lines AS INTEGER) AS _source_lines"
        if "_source_lines" in present
        else "CAST(NULL AS INTEGER) AS _source_lines",
    ]
    if files:
        source = "read_parquet($files, hive_partitioning = true, hive_types = {'date': DATE}, union_by_name = true)"
    else:  # no partition in the range: an empty input with the contract's columns
        text = (*contract.SOURCE_COLUMNS, "_source_file", "_source_sha256", "_parse_error")
        empty = ", ".join(
            [
                "CAST(NULL AS DATE) AS date",
                "CAST(NULL AS INTEGER) AS _source_line",
                "CAST(NULL AS INTEGER) AS _source_lines",
            ]
            + [f"CAST(NULL AS VARCHAR) AS {c}" for c in text]
        )
        source = f"(SELECT {empty} WHERE false)"
    return f"SELECT {', '.join(cols)} FROM {source}", extras


def _classify(conn: duckdb.DuckDBPyConnection, raw_select: str, files: list[str]) -> None:
    """Build the temp table: every raw row of the range, typed, placed in time, with its rule."""
    zones = known_zones(conn)

    def at(zone_column: str, value_sql: str) -> str:
        return zone_convert_sql(zone_column, value_sql, zones)

    conn.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {_TEMP} AS
        WITH raw AS ({raw_select}),
        typed AS (SELECT *, {contract.typed_sql()} FROM raw),
        zones AS (
            SELECT faa, tzone FROM core.dim_airports
            WHERE tzone IN (SELECT name FROM pg_timezone_names())
        ),
        checked AS (
            SELECT typed.*,
                o.tzone AS origin_tzone, d.tzone AS dest_tzone,
                typed.carrier IN (SELECT carrier FROM core.dim_carriers) AS _carrier_known,
                {contract.missing_key_sql()} AS _missing_key,
                {contract.bad_type_sql()} AS _bad_type,
                {contract.out_of_range_sql()} AS _out_of_range
            FROM typed
            LEFT JOIN zones o ON o.faa = typed.origin
            LEFT JOIN zones d ON d.faa = typed.dest
        ),
        decided AS (SELECT *, {contract.rule_sql()} AS rule FROM checked),
        timed AS (
            SELECT *,
                flight_date + to_minutes(sched_dep_time // 100 * 60 + sched_dep_time % 100) AS sched_dep_local,
                {at("origin_tzone", "sched_dep_local")} AS sched_dep_utc,
                {at("dest_tzone", "sched_dep_utc")} AS _dep_at_dest,
                date_trunc('day', _dep_at_dest)
                    + to_minutes(sched_arr_time // 100 * 60 + sched_arr_time % 100) AS _arr_same_day
            FROM decided
        )
        SELECT * EXCLUDE (_dep_at_dest, _arr_same_day),
            {contract.detail_sql()} AS detail,
            CASE WHEN _arr_same_day < _dep_at_dest THEN _arr_same_day + INTERVAL 1 DAY
                 ELSE _arr_same_day END AS sched_arr_local,
            {at("dest_tzone", "sched_arr_local")} AS sched_arr_utc,
            sched_dep_utc + to_minutes(dep_delay) AS actual_dep_utc,
            {at("origin_tzone", "actual_dep_utc")} AS actual_dep_local,
            sched_arr_utc + to_minutes(arr_delay) AS actual_arr_utc,
            {at("dest_tzone", "actual_arr_utc")} AS actual_arr_local,
            dep_time IS NULL AS is_cancelled,
            dep_time IS NOT NULL AND arr_delay IS NULL AS is_diverted
        FROM timed
        """,
        {"files": files} if files else None,
    )
    _mark_duplicates(conn)


def _mark_duplicates(conn: duckdb.DuckDBPyConnection) -> None:
    """Turn every valid row but one per key into ``duplicate_key``; the row of the latest file by
    name, then the first line, stays.

    Keys are grouped first and only the rows of repeated keys are ranked: ranking every row
    (a window over the whole range) took 60 % of the load at 3.4 million flights.
    """
    key = "flight_date, carrier, flight, origin, sched_dep_time"
    conn.execute(
        f"""
        UPDATE {_TEMP} SET rule = 'duplicate_key', detail = {contract.duplicate_detail_sql("r._kept_file", "r._kept_line")}
        FROM (
            SELECT _source_file, _source_line, flight_date,
                row_number() OVER k AS _rank,
                first_value(_source_file) OVER k AS _kept_file,
                first_value(_source_line) OVER k AS _kept_line
            FROM {_TEMP}
            WHERE rule IS NULL AND ({key}) IN (
                SELECT ({key}) FROM {_TEMP} WHERE rule IS NULL GROUP BY ALL HAVING count(*) > 1
            )
            WINDOW k AS (PARTITION BY {key} ORDER BY _source_file DESC, _source_line)
        ) r
        WHERE r._rank > 1 AND {_TEMP}._source_file = r._source_file AND {_TEMP}._source_line = r._source_line
            AND {_TEMP}.flight_date = r.flight_date
        """
    )


def _require_dimensions(conn: duckdb.DuckDBPyConnection) -> None:
    for table in ("core.dim_carriers", "core.dim_airports"):
        if not table_columns(conn, table) or not conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]:
            raise RuntimeError(f"{table} is empty: load the dimensions (dims.load_dims) before flights")


def load_staging_flights(conn: duckdb.DuckDBPyConnection, lake: str, first: dt.date, last: dt.date) -> LoadResult:
    """Replace the flights of [first, last] (and their quarantine) with what the lake holds, in one transaction.

    Reads ``<lake>/raw/flights/date=*/part-0.parquet`` for the range. Every schema
    check runs before the transaction; on any error nothing changes.
    """
    started = time.perf_counter()
    check_range(first, last)
    create_tables(conn)
    _require_dimensions(conn)
    files = lake_files(conn, lake, "flights", first, last)
    raw_select, extras = _raw_source(conn, files)
    try:
        _classify(conn, raw_select, files)
        staged_cols = [*STAGING_COLUMNS, *extras]
        staged = f"SELECT {', '.join(staged_cols)} FROM {_TEMP} WHERE rule IS NULL"
        raw_json = ", ".join(
            [f"{c} := {contract.kept_value_sql(f'raw_{c}')}" for c in contract.SOURCE_COLUMNS]
            + [f"{e} := {contract.kept_value_sql(e)}" for e in extras]
        )
        range_filter = "flight_date BETWEEN $first AND $last"
        params = {"first": first, "last": last}
        with transaction(conn):
            added = sync_columns(conn, TABLE, staged, required=STAGING_COLUMNS)
            conn.execute(f"DELETE FROM {TABLE} WHERE {range_filter}", params)
            conn.execute(f"DELETE FROM {QUARANTINE} WHERE {range_filter}", params)
            conn.execute(
                f"INSERT INTO {TABLE} BY NAME {staged} ORDER BY flight_date, origin, sched_dep_time, carrier, flight"
            )
            conn.execute(
                f"""
                INSERT INTO {QUARANTINE} BY NAME
                SELECT rule, detail, flight_date, _source_file, _source_line, _source_sha256,
                       CAST(to_json(struct_pack({raw_json})) AS VARCHAR) AS raw_values
                FROM {_TEMP} WHERE rule IS NOT NULL
                ORDER BY flight_date, _source_file, _source_line
                """
            )
        days = counts_by_day(
            conn, f"SELECT flight_date, rule, false, count(*) FROM {_TEMP} GROUP BY ALL", None, first, last
        )
        # What the files hold by their own line count (independent of the CSV reader), per day.
        in_files = dict(
            conn.execute(
                f"SELECT flight_date, sum(lines) FROM (SELECT flight_date, _source_file, max(_source_lines) AS lines "
                f"FROM {_TEMP} GROUP BY ALL) GROUP BY ALL HAVING count(lines) = count(*)"
            ).fetchall()
        )
        days = {d: replace(c, source_rows=int(in_files[d])) if d in in_files else c for d, c in days.items()}
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {_TEMP}")
    return LoadResult(TABLE, first, last, days, time.perf_counter() - started, tuple(added))
