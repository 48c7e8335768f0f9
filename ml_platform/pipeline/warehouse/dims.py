"""Dimensions: airlines, airports and planes, refreshed whole from the lake's reference copies.

* ``core.dim_carriers``  one row per airline code (``carrier``) with its name.
* ``core.dim_airports``  one row per FAA code with location, altitude and IANA time zone
  (``tzone``), which places every local flight time. ``source`` says where a row
  comes from: ``ops`` (the operational database) or ``supplement`` (the seed
  ``airports_supplement.csv`` next to this module, for destinations the operational
  table lacks: SJU, BQN, PSE, STT). An ``ops`` row always wins over a seed row.
* ``core.dim_planes``    one row per tail number: build ``year``, type, maker, model,
  engines, seats. Many tail numbers that fly have no row here; that is not an error.

A reference row without its key or repeating a key is not loaded but kept in
``quarantine.<dim table>`` (rules ``missing_key``, ``bad_type``, ``duplicate_key``;
the first row of the file wins a duplicate). Each refresh is one transaction.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ml_platform.domain.lake_layout import table_url
from ml_platform.io.warehouse import ident, sql_string, transaction
from ml_platform.pipeline.warehouse.common import Counts, ensure_schemas
from ml_platform.pipeline.warehouse.schema import SchemaChangeError, describe, ensure_table

SUPPLEMENT_PATH = Path(__file__).with_name("airports_supplement.csv")
SUPPLEMENT_VERSION = "1"  # bump together with the seed_version column of the CSV
QUARANTINE_COLUMNS = {"rule": "VARCHAR", "detail": "VARCHAR", "_source_row": "BIGINT", "raw_values": "VARCHAR"}


@dataclass(frozen=True)
class Dimension:
    table: str  # core.<name>
    source: str  # the lake's reference table
    key: str
    columns: dict[str, str]  # column -> type, in the lake table's names

    @property
    def name(self) -> str:
        return self.table.split(".")[1]


CARRIERS = Dimension("core.dim_carriers", "airlines", "carrier", {"carrier": "VARCHAR", "name": "VARCHAR"})
AIRPORTS = Dimension(
    "core.dim_airports",
    "airports",
    "faa",
    {
        "faa": "VARCHAR",
        "name": "VARCHAR",
        "lat": "DOUBLE",
        "lon": "DOUBLE",
        "alt": "INTEGER",
        "tz": "INTEGER",
        "dst": "VARCHAR",
        "tzone": "VARCHAR",
    },
)
PLANES = Dimension(
    "core.dim_planes",
    "planes",
    "tailnum",
    {
        "tailnum": "VARCHAR",
        "year": "INTEGER",
        "type": "VARCHAR",
        "manufacturer": "VARCHAR",
        "model": "VARCHAR",
        "engines": "INTEGER",
        "seats": "INTEGER",
        "speed": "INTEGER",
        "engine": "VARCHAR",
    },
)
AIRPORT_EXTRA_COLUMNS = {"source": "VARCHAR", "seed_version": "VARCHAR"}


def create_dim_tables(conn: duckdb.DuckDBPyConnection) -> None:
    ensure_schemas(conn)
    for dim in (CARRIERS, AIRPORTS, PLANES):
        extra = AIRPORT_EXTRA_COLUMNS if dim is AIRPORTS else {}
        ensure_table(conn, dim.table, {**dim.columns, **extra})
        ensure_table(conn, f"quarantine.{dim.name}", QUARANTINE_COLUMNS)


def read_supplement() -> list[dict[str, str]]:
    """The seed rows as text, checked to carry SUPPLEMENT_VERSION."""
    with SUPPLEMENT_PATH.open(newline="") as f:
        rows = list(csv.DictReader(f))
    versions = {r["seed_version"] for r in rows}
    if versions != {SUPPLEMENT_VERSION}:
        raise ValueError(f"{SUPPLEMENT_PATH.name} has seed_version {versions}, the code expects {SUPPLEMENT_VERSION}")
    return rows


def _classify(conn: duckdb.DuckDBPyConnection, dim: Dimension, lake: str) -> str:
    """Typed rows of the lake table with ``rule``/``detail`` in a temp table; returns its name."""
    path = table_url(lake, dim.source)
    source = describe(conn, f"SELECT * FROM read_parquet({sql_string(path)})")
    for column in dim.columns:
        if column not in source:
            raise SchemaChangeError(column, f"missing from the lake's {dim.source} table ({path})")
    key = ident(dim.key)
    typed = ", ".join(f"TRY_CAST({ident(c)} AS {t}) AS {c}" for c, t in dim.columns.items())
    bad = ", ".join(
        f"CASE WHEN {c} IS NOT NULL AND TRY_CAST({c} AS {t}) IS NULL THEN '{c}=' || CAST({c} AS VARCHAR) END"
        for c, t in dim.columns.items()
    )
    raw = ", ".join(f"{c} := CAST({c} AS VARCHAR)" for c in dim.columns)
    temp = f"_wh_{dim.name}"
    conn.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {temp} AS
        WITH src AS (SELECT * FROM read_parquet($path, file_row_number = true)),
        typed AS (
            SELECT file_row_number AS _source_row, {typed},
                   NULLIF(concat_ws('; ', {bad}), '') AS _bad,
                   CAST(to_json(struct_pack({raw})) AS VARCHAR) AS raw_values
            FROM src
        ),
        ruled AS (
            SELECT *, CASE
                WHEN {key} IS NULL OR trim({key}) = '' THEN 'missing_key'
                WHEN _bad IS NOT NULL THEN 'bad_type' END AS _rule
            FROM typed
        )
        SELECT *,
            CASE WHEN _rule IS NULL AND row_number() OVER w > 1 THEN 'duplicate_key' ELSE _rule END AS rule,
            CASE WHEN _rule = 'missing_key' THEN '{key} is empty'
                 WHEN _rule = 'bad_type' THEN 'will not cast: ' || _bad
                 WHEN row_number() OVER w > 1 THEN 'same {key} as row ' || first_value(_source_row) OVER w
            END AS detail
        FROM ruled
        WINDOW w AS (PARTITION BY _rule IS NULL, {key} ORDER BY _source_row)
        """,
        {"path": path},
    )
    return temp


def refresh_dimension(conn: duckdb.DuckDBPyConnection, dim: Dimension, lake: str) -> Counts:
    """Replace one dimension (and its quarantine) with the lake's current reference table."""
    create_dim_tables(conn)
    temp = _classify(conn, dim, lake)
    columns = ", ".join(dim.columns)
    try:
        select = f"SELECT {columns} FROM {temp} WHERE rule IS NULL"
        added = 0
        if dim is AIRPORTS:
            read_supplement()  # checks the seed's version
            conn.execute(
                "CREATE OR REPLACE TEMP TABLE _wh_airports_seed AS "
                "SELECT * FROM read_csv($path, all_varchar = true, header = true)",
                {"path": str(SUPPLEMENT_PATH)},
            )
            seed_typed = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in dim.columns.items())
            select = f"""
                SELECT {columns}, 'ops' AS source, NULL AS seed_version FROM {temp} WHERE rule IS NULL
                UNION ALL
                SELECT {columns}, 'supplement', seed_version
                FROM (SELECT {seed_typed}, seed_version FROM _wh_airports_seed)
                WHERE faa NOT IN (SELECT faa FROM {temp} WHERE rule IS NULL)
            """
            added = conn.execute(
                f"SELECT count(*) FROM _wh_airports_seed WHERE faa NOT IN (SELECT faa FROM {temp} WHERE rule IS NULL)"
            ).fetchone()[0]
        with transaction(conn):
            conn.execute(f"DELETE FROM {dim.table}")
            conn.execute(f"DELETE FROM quarantine.{dim.name}")
            conn.execute(f"INSERT INTO {dim.table} BY NAME {select} ORDER BY {ident(dim.key)}")
            conn.execute(
                f"INSERT INTO quarantine.{dim.name} BY NAME "
                f"SELECT rule, detail, _source_row, raw_values FROM {temp} WHERE rule IS NOT NULL ORDER BY _source_row"
            )
        rows = conn.execute(f"SELECT rule, count(*) FROM {temp} GROUP BY rule").fetchall()
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {temp}")
        conn.execute("DROP TABLE IF EXISTS _wh_airports_seed")
    by_rule = {rule: n for rule, n in rows if rule is not None}
    loaded = sum(n for rule, n in rows if rule is None)
    return Counts(loaded + sum(by_rule.values()), loaded, by_rule, added)


def load_dim_carriers(conn: duckdb.DuckDBPyConnection, lake: str) -> Counts:
    return refresh_dimension(conn, CARRIERS, lake)


def load_dim_airports(conn: duckdb.DuckDBPyConnection, lake: str) -> Counts:
    """Airports from the lake plus the seeded ones it lacks (``added_rows``)."""
    return refresh_dimension(conn, AIRPORTS, lake)


def load_dim_planes(conn: duckdb.DuckDBPyConnection, lake: str) -> Counts:
    return refresh_dimension(conn, PLANES, lake)


def load_dims(conn: duckdb.DuckDBPyConnection, lake: str) -> dict[str, Counts]:
    """Refresh all three dimensions; ``{table: Counts}``."""
    return {dim.table: refresh_dimension(conn, dim, lake) for dim in (CARRIERS, AIRPORTS, PLANES)}
