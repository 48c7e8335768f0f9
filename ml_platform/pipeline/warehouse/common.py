"""What every warehouse load shares: its schemas, time zones, the lake's day files and row counts.

The warehouse is plain SQL run on a ``duckdb.DuckDBPyConnection``. Nothing here
depends on which catalog is attached: only schemas, tables, ``DELETE``/``INSERT ... SELECT``
and temporary tables are used. The lake is addressed by its root as a string (a local path
or ``s3://bucket/prefix``); its layout is ``ml_platform.domain.lake_layout``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import duckdb
import polars as pl

from ml_platform.domain.calendar import days_between
from ml_platform.domain.lake_layout import day_files_glob
from ml_platform.io.warehouse import ident, run_ddl, sql_string, table_name

SCHEMAS = ("staging", "core", "quarantine")


def ensure_schemas(conn: duckdb.DuckDBPyConnection, schemas: tuple[str, ...] = SCHEMAS) -> None:
    """Create the missing ones among ``schemas``; when none is missing, nothing is written (no lock taken)."""
    present = {
        r[0]
        for r in conn.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE catalog_name = current_database()"
        ).fetchall()
    }
    missing = [s for s in schemas if s not in present]
    if missing:
        run_ddl(conn, *(f"CREATE SCHEMA IF NOT EXISTS {ident(s)}" for s in missing))


# ---------------------------------------------------------------- time zones


def known_zones(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """The airport time zones (``core.dim_airports.tzone``) this DuckDB knows, sorted."""
    rows = conn.execute(
        """
        SELECT DISTINCT tzone FROM core.dim_airports
        WHERE tzone IN (SELECT name FROM pg_timezone_names()) ORDER BY tzone
        """
    ).fetchall()
    return [r[0] for r in rows]


def zone_convert_sql(zone_column: str, value_sql: str, zones: list[str]) -> str:
    """``timezone(zone_column, value_sql)`` written as a CASE over the known zones.

    Same result as the plain call (a naive local TIMESTAMP becomes a TIMESTAMPTZ
    instant and vice versa), but each branch has a constant zone, which DuckDB
    converts about 15 times faster than a zone that varies per row. Zones outside
    ``zones`` give NULL.
    """
    if not zones:
        return f"(CASE WHEN false THEN timezone('UTC', {value_sql}) END)"
    branches = " ".join(f"WHEN {sql_string(z)} THEN timezone({sql_string(z)}, {value_sql})" for z in zones)
    return f"(CASE {zone_column} {branches} END)"


# ---------------------------------------------------------------- the lake


def lake_files(conn: duckdb.DuckDBPyConnection, lake: str, source: str, first: dt.date, last: dt.date) -> list[str]:
    """The day files of ``source`` whose ``date=`` folder lies in [first, last], in date order."""
    rows = conn.execute(
        r"""
        SELECT file FROM glob($pattern)
        WHERE TRY_CAST(regexp_extract(file, 'date=(\d{4}-\d{2}-\d{2})/', 1) AS DATE) BETWEEN $first AND $last
        ORDER BY file
        """,
        {"pattern": day_files_glob(lake, source), "first": first, "last": last},
    ).fetchall()
    return [r[0] for r in rows]


# ---------------------------------------------------------------- counts


@dataclass(frozen=True)
class Counts:
    """Rows of one day (or one reference table) through a load.

    Every input row is either loaded or quarantined: ``input_rows == loaded_rows +
    quarantined_rows``. ``added_rows`` are rows the warehouse writes that no input
    row stands for (imputed weather hours, seeded airports); they are not input.
    """

    input_rows: int = 0
    loaded_rows: int = 0
    quarantined: Mapping[str, int] = field(default_factory=dict)  # rule -> rows
    added_rows: int = 0
    # Rows the delivered files hold, counted from their lines without a CSV parser (None: not known).
    source_rows: int | None = None

    @property
    def quarantined_rows(self) -> int:
        return sum(self.quarantined.values())

    @property
    def balanced(self) -> bool:
        in_files = self.source_rows is None or self.source_rows == self.input_rows
        return in_files and self.input_rows == self.loaded_rows + self.quarantined_rows

    def __add__(self, other: Counts) -> Counts:
        rules = dict(self.quarantined)
        for rule, n in other.quarantined.items():
            rules[rule] = rules.get(rule, 0) + n
        return Counts(
            self.input_rows + other.input_rows,
            self.loaded_rows + other.loaded_rows,
            rules,
            self.added_rows + other.added_rows,
            None
            if self.source_rows is None and other.source_rows is None
            else (self.source_rows or 0) + (other.source_rows or 0),
        )

    def to_dict(self) -> dict:
        return {
            "input_rows": self.input_rows,
            "loaded_rows": self.loaded_rows,
            "quarantined_rows": self.quarantined_rows,
            "quarantined_by_rule": dict(sorted(self.quarantined.items())),
            "added_rows": self.added_rows,
            **({} if self.source_rows is None else {"source_rows": self.source_rows}),
        }


@dataclass(frozen=True)
class LoadResult:
    """What one range load did, day by day (every day of the range is listed, empty ones too)."""

    table: str
    first: dt.date
    last: dt.date
    days: Mapping[dt.date, Counts]
    seconds: float = 0.0
    added_columns: tuple[str, ...] = ()

    @property
    def total(self) -> Counts:
        total = Counts()
        for counts in self.days.values():
            total = total + counts
        return total

    def unbalanced_days(self) -> list[dt.date]:
        """Days where input != loaded + quarantined (always empty unless a rule lost rows)."""
        return [day for day, c in self.days.items() if not c.balanced]

    def to_dict(self) -> dict:
        return {
            "table": self.table,
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "seconds": round(self.seconds, 3),
            "added_columns": list(self.added_columns),
            **self.total.to_dict(),
        }


def counts_by_day(
    conn: duckdb.DuckDBPyConnection,
    sql: str,
    params: Mapping | None,
    first: dt.date,
    last: dt.date,
) -> dict[dt.date, Counts]:
    """Per-day Counts from a query returning rows of (day, rule, is_added, rows).

    ``rule`` is NULL for a loaded input row and the quarantine rule otherwise;
    ``is_added`` marks rows the warehouse made up (they are not input).
    """
    per_day = {d: {"input": 0, "loaded": 0, "rules": {}, "added": 0} for d in days_between(first, last)}
    for day, rule, is_added, rows in conn.execute(sql, params).fetchall():
        entry = per_day.get(day)
        if entry is None:
            continue
        if is_added:
            entry["added"] += rows
            continue
        entry["input"] += rows
        if rule is None:
            entry["loaded"] += rows
        else:
            entry["rules"][rule] = entry["rules"].get(rule, 0) + rows
    return {d: Counts(e["input"], e["loaded"], e["rules"], e["added"]) for d, e in per_day.items()}


def read_days(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    date_column: str,
    first: dt.date,
    last: dt.date,
    limit: int | None = None,
):
    """The rows of ``table`` whose ``date_column`` is in [first, last] (the first ``limit``), as a polars frame."""
    more = "" if limit is None else f" LIMIT {int(limit)}"
    return conn.execute(
        f"SELECT * FROM {table_name(table)} WHERE {ident(date_column)} BETWEEN $first AND $last{more}",
        {"first": first, "last": last},
    ).pl()


# What a step holds in memory at once when it reads a range back: at ten times the year,
# reading the whole range made a step hold 3.4 million rows (about 4 GB with its checks);
# parts of 400,000 rows still took the warehouse stage to 1.8-1.9 GB (DuckDB's 1 GB
# included), parts of 200,000 to 1.67 GB, in as much time.
MAX_ROWS_PER_PART = 200_000


def rows_per_day(conn: duckdb.DuckDBPyConnection, table: str, date_column: str, first: dt.date, last: dt.date):
    """{day: rows} of ``table`` in [first, last] (days without rows left out)."""
    column = ident(date_column)
    return dict(
        conn.execute(
            f"SELECT {column}, count(*) FROM {table_name(table)} WHERE {column} BETWEEN $first AND $last GROUP BY ALL",
            {"first": first, "last": last},
        ).fetchall()
    )


def runs_of_days(
    per_day: Mapping[dt.date, int], first: dt.date, last: dt.date, limit: int
) -> list[tuple[dt.date, dt.date]]:
    """[first, last] cut into runs of consecutive days of at most ``limit`` rows (a bigger day is a run alone)."""
    runs, start, rows = [], first, 0
    for day in days_between(first, last):
        n = per_day.get(day, 0)
        if rows and rows + n > limit:
            runs.append((start, day - dt.timedelta(days=1)))
            start, rows = day, 0
        rows += n
    return [*runs, (start, last)]


def parts_of_days(
    conn: duckdb.DuckDBPyConnection, table: str, date_column: str, first: dt.date, last: dt.date
) -> list[tuple[dt.date, dt.date]]:
    """[first, last] as runs of whole days of at most ``MAX_ROWS_PER_PART`` rows of ``table`` each."""
    return runs_of_days(rows_per_day(conn, table, date_column, first, last), first, last, MAX_ROWS_PER_PART)


def read_days_in_parts(
    conn: duckdb.DuckDBPyConnection, table: str, date_column: str, first: dt.date, last: dt.date
) -> Iterator[pl.DataFrame]:
    """The rows of [first, last], one frame per part (``parts_of_days``): memory stays bounded whatever the range."""
    for start, end in parts_of_days(conn, table, date_column, first, last):
        yield read_days(conn, table, date_column, start, end)
