"""``core.fct_flights``: one row per staged flight, with everything a person asks about it.

Each flight of ``staging.flights`` with its airline's name, the origin's and
destination's names and time zones, and the plane's build year (``plane_year``),
type (``plane_type``), manufacturer, model, engines and seats. Planes are joined
left: a tail number missing from ``core.dim_planes`` leaves those columns NULL and
``has_plane`` false; a flight without a tail number has ``has_tailnum`` false (and
``has_plane`` false). ``is_delayed`` is the label the models predict: arrival more
than 15 minutes late, NULL for cancelled and diverted flights (they have no arrival).

Rebuilt for a date range in one transaction from the warehouse itself (run after
``load_staging_flights`` and the dimensions); nothing is quarantined here.
"""

from __future__ import annotations

import datetime as dt
import time

import duckdb

from ml_platform.domain.calendar import check_range, days_between
from ml_platform.domain.flights import DELAY_THRESHOLD_MINUTES
from ml_platform.io.warehouse import transaction
from ml_platform.pipeline.warehouse.common import Counts, LoadResult, ensure_schemas
from ml_platform.pipeline.warehouse.dims import create_dim_tables
from ml_platform.pipeline.warehouse.flights import STAGING_COLUMNS
from ml_platform.pipeline.warehouse.flights import create_tables as create_staging_tables
from ml_platform.pipeline.warehouse.schema import ensure_table

TABLE = "core.fct_flights"

_FLIGHT_COLUMNS = [c for c in STAGING_COLUMNS if c not in ("year", "month", "day", "_source_sha256")]
FACT_COLUMNS = {
    **{c: STAGING_COLUMNS[c] for c in _FLIGHT_COLUMNS},
    "carrier_name": "VARCHAR",
    "origin_name": "VARCHAR",
    "origin_tzone": "VARCHAR",
    "dest_name": "VARCHAR",
    "dest_tzone": "VARCHAR",
    "has_tailnum": "BOOLEAN",
    "has_plane": "BOOLEAN",
    "plane_year": "INTEGER",
    "plane_type": "VARCHAR",
    "manufacturer": "VARCHAR",
    "model": "VARCHAR",
    "engines": "INTEGER",
    "seats": "INTEGER",
    "is_delayed": "BOOLEAN",
}

_SELECT = f"""
    SELECT {", ".join(f"f.{c}" for c in _FLIGHT_COLUMNS)},
        c.name AS carrier_name,
        o.name AS origin_name, o.tzone AS origin_tzone,
        d.name AS dest_name, d.tzone AS dest_tzone,
        f.tailnum IS NOT NULL AS has_tailnum,
        p.tailnum IS NOT NULL AS has_plane,
        p.year AS plane_year, p.type AS plane_type, p.manufacturer, p.model, p.engines, p.seats,
        CASE WHEN f.arr_delay IS NOT NULL THEN f.arr_delay > {DELAY_THRESHOLD_MINUTES} END AS is_delayed
    FROM staging.flights f
    LEFT JOIN core.dim_carriers c ON c.carrier = f.carrier
    LEFT JOIN core.dim_airports o ON o.faa = f.origin
    LEFT JOIN core.dim_airports d ON d.faa = f.dest
    LEFT JOIN core.dim_planes p ON p.tailnum = f.tailnum
    WHERE f.flight_date BETWEEN $first AND $last
"""


def create_tables(conn: duckdb.DuckDBPyConnection) -> None:
    ensure_schemas(conn)
    ensure_table(conn, TABLE, FACT_COLUMNS)


def load_fct_flights(conn: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> LoadResult:
    """Replace the facts of [first, last] with the staged flights joined to the dimensions."""
    started = time.perf_counter()
    check_range(first, last)
    create_staging_tables(conn)
    create_dim_tables(conn)
    create_tables(conn)
    params = {"first": first, "last": last}
    with transaction(conn):
        conn.execute(f"DELETE FROM {TABLE} WHERE flight_date BETWEEN $first AND $last", params)
        conn.execute(
            f"INSERT INTO {TABLE} BY NAME {_SELECT} "
            "ORDER BY f.flight_date, f.origin, f.sched_dep_time, f.carrier, f.flight",
            params,
        )
        per_day = "SELECT flight_date, count(*) FROM {} WHERE flight_date BETWEEN $first AND $last GROUP BY ALL"
        staged = dict(conn.execute(per_day.format("staging.flights"), params).fetchall())
        loaded = dict(conn.execute(per_day.format(TABLE), params).fetchall())
        if staged != loaded:  # a dimension key repeated would duplicate flights: refuse to commit
            raise RuntimeError(f"{TABLE} would not have one row per staged flight; nothing was changed")
    days = {d: Counts(staged.get(d, 0), loaded.get(d, 0)) for d in days_between(first, last)}
    return LoadResult(TABLE, first, last, days, time.perf_counter() - started)
