"""(e) The independent anchor: the feature table straight from the files, in a few set-based DuckDB statements.

    features, seconds = build_features(landing_dir, reference_dir, weather_csv, first, last)  # as the pandas baseline
    seconds = build(conn, landing_dir, reference_dir, weather_csv, first, last)  # features.flight_features in conn
    python -m benchmarks.verify_anchor --first 2013-02-01 --last 2013-02-12   # against the platform, column by column

The lower bound of the benchmark (issue #21): the least work that turns the landing files,
weather.csv and the reference CSVs into ``features.flight_features``, with one DuckDB
connection, no loop over days or rows, and nothing the features do not need (no
quarantine tables, lineage, metadata, checks, Parquet lake or published copies). Written
apart from the platform's SQL: it imports none of ``ml_platform``'s pipeline, warehouse or
features code, only the table's column names and types (``ml_platform.domain.features``) and
the airports supplement CSV, which are data. The rules are restated from
docs/warehouse_rules.md, ``flight_rules.py``'s contract and docs/features.md:

* **lake** (one call, five ``CREATE TABLE ... AS``): the range's landing files (one scan per
  header layout, no type sniffing), the weather of their days and the three reference tables,
  as text, into temporary tables (in insertion order: ``rowid`` is the line order).
* **warehouse** (three statements): the airports with a known zone (the operational table,
  then the seed for the codes it lacks); the flights that pass the contract's ten rules
  (one filter; the last file by name, then the first line, wins a repeated key), placed in
  time with one constant zone per ``CASE`` branch; the weather cleaned, deduplicated and its
  1-3 hour gaps interpolated.
* **features** (one statement): every kind of past event (labelled arrivals per history
  group, departures, cancellations, the schedule, published reports) numbered per group and
  instant (running counts as row numbers, the one running sum being departure delays), and
  each family of flights that share their values (an airport and scheduled instant; a
  carrier, route or plane and prediction time) looking up all the instants it needs in an
  events table with one ``ASOF`` join, pivoted back. A window (a, b] is the count at b minus
  the count at a. Holidays are computed in SQL (5 U.S.C. 6103).

Files the platform rejects (empty, header only, a repeated or missing required column) are
skipped; a line with the wrong number of fields is dropped (the platform quarantines it, so
neither makes a feature row). Not carried over: raw columns outside the contract (the
platform keeps them as ``extra_*``), which no feature reads.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import polars as pl

# The table to reproduce: its column names, types and windows are the platform's definition.
from ml_platform.domain.features import COLUMNS, HISTORY_GROUPS, HISTORY_WINDOW_DAYS, TABLE, WEATHER_MEASURES

if TYPE_CHECKING:
    from benchmarks.data import Inputs
    from benchmarks.measure import Stopwatch

SUPPLEMENT_CSV = (
    Path(importlib.util.find_spec("ml_platform").submodule_search_locations[0])
    / "pipeline"
    / "warehouse"
    / "airports_supplement.csv"
)
NEW_YORK = "America/New_York"
NYC_ORIGINS = ("EWR", "JFK", "LGA")
NAME = re.compile(r"flights_(\d{4}-\d{2}-\d{2})(?:_[A-Za-z0-9-]+)?\.csv")
SOURCE = (
    "year",
    "month",
    "day",
    "dep_time",
    "sched_dep_time",
    "dep_delay",
    "arr_time",
    "sched_arr_time",
    "arr_delay",
    "carrier",
    "flight",
    "tailnum",
    "origin",
    "dest",
    "air_time",
    "distance",
    "hour",
    "minute",
    "time_hour",
)
REQUIRED = SOURCE[:14]  # a file without one of these is rejected; the others may be missing
TEXTS = ("carrier", "tailnum", "origin", "dest")
INTEGERS = tuple(c for c in SOURCE if c not in (*TEXTS, "time_hour"))
HHMM = ("dep_time", "sched_dep_time", "arr_time", "sched_arr_time")
RANGES = {  # inclusive; a missing value passes
    "month": (1, 12),
    "day": (1, 31),
    "hour": (0, 24),
    "minute": (0, 59),
    "flight": (1, 9999),
    "dep_delay": (-1440, 1440),
    "arr_delay": (-1440, 1440),
    "distance": (1, 5999),
    "air_time": (0, 1000),
    **{c: (0, 2400) for c in HHMM},
}
MAX_LENGTH = {"carrier": 2, "tailnum": 10, "origin": 3, "dest": 3}
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DELAY_THRESHOLD = 15
WEATHER_BOUNDS = {
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
KNOWN_AFTER_MINUTES, MAX_GAP_HOURS = 51, 3
REFERENCE = {  # table -> (key, {typed column: type}); a row with a value that does not cast is refused
    "airlines": ("carrier", {}),
    "airports": ("faa", {"lat": "DOUBLE", "lon": "DOUBLE", "alt": "INTEGER", "tz": "INTEGER"}),
    "planes": ("tailnum", {"year": "INTEGER", "engines": "INTEGER", "seats": "INTEGER", "speed": "INTEGER"}),
}
# Windows, in microseconds (every time below is epoch microseconds, UTC).
MINUTE = 60_000_000
HOUR = 60 * MINUTE
AIRPORT_WINDOW, SCHEDULE_HALF, MAX_WEATHER_AGE, TREND = 2 * HOUR, HOUR, 6 * HOUR, 3 * HOUR
HISTORY_LOOKBACK_DAYS = max(HISTORY_WINDOW_DAYS) + 4  # the widest window, a day of horizon, late arrivals


def _text(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _name(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


# ---------------------------------------------------------------- lake


def _header(path: Path) -> tuple[str, ...] | None:
    """The file's column names, or None for a file the platform rejects (empty, header only, bad header)."""
    with path.open("rb") as f:
        head = f.read(1 << 16)
        more = bool(f.read(1))
    first, _, rest = head.decode("utf-8-sig", errors="replace").partition("\n")
    names = tuple(n.strip().strip('"') for n in first.strip().split(","))
    if not first.strip() or not (rest.strip() or more):
        return None
    if len(set(names)) != len(names) or any(c not in names for c in REQUIRED):
        return None
    return names


def landing_files(
    landing_dir: Path, first: dt.date, last: dt.date, progress: Callable[[str], object] = print
) -> dict[tuple[str, ...], list[Path]]:
    """The usable landing files of [first, last], grouped by header."""
    groups: dict[tuple[str, ...], list[Path]] = {}
    for path in sorted(Path(landing_dir).glob("flights_*.csv")):
        match = NAME.fullmatch(path.name)
        if not match or not first <= dt.date.fromisoformat(match.group(1)) <= last:
            continue
        header = _header(path)
        if header is None:
            progress(f"rejected {path.name}")
            continue
        groups.setdefault(header, []).append(path)
    if not groups:
        raise ValueError(f"no usable landing file for {first}..{last} in {landing_dir}")
    return groups


def lake_sql(groups: dict[tuple[str, ...], list[Path]], reference_dir: Path, weather_csv: Path) -> str:
    """Five CREATE TABLE statements: raw flights (text), the weather of their days, the reference tables."""
    reads = []
    for header, files in groups.items():  # one scan per header layout, the columns named as the file has them
        columns = "{" + ", ".join(f"{_text(c)}: 'VARCHAR'" for c in header) + "}"
        values = ", ".join(f"{_name(c) if c in header else 'CAST(NULL AS VARCHAR)'} AS raw_{c}" for c in SOURCE)
        reads.append(
            f"SELECT CAST(substr(parse_filename(filename), 9, 10) AS DATE) AS flight_date, "
            f"parse_filename(filename) AS _file, {values} "
            f"FROM read_csv([{', '.join(_text(p) for p in files)}], header = true, auto_detect = false, "
            f"columns = {columns}, nullstr = ['NA', ''], ignore_errors = true, filename = true)"
        )
    days = sorted({NAME.fullmatch(p.name).group(1) for files in groups.values() for p in files})
    numbers = {c: "DOUBLE" for c in WEATHER_BOUNDS} | {c: "BIGINT" for c in ("year", "month", "day", "hour")}
    types = (
        "{"
        + ", ".join(f"'{c}': '{t}'" for c, t in {"origin": "VARCHAR", "time_hour": "VARCHAR", **numbers}.items())
        + "}"
    )
    statements = [
        f"CREATE OR REPLACE TEMP TABLE raw_flights AS {' UNION ALL '.join(reads)}",
        f"CREATE OR REPLACE TEMP TABLE raw_weather AS SELECT *, make_date(year, month, day) AS _day "
        f"FROM read_csv({_text(weather_csv)}, header = true, nullstr = 'NA', types = {types}) "
        f"WHERE make_date(year, month, day) IN ({', '.join(f'DATE {_text(d)}' for d in days)})",
        *(
            f"CREATE OR REPLACE TEMP TABLE raw_{name} AS SELECT * FROM read_csv("
            f"{_text(Path(reference_dir) / f'{name}.csv')}, header = true, all_varchar = true, nullstr = ['NA', ''])"
            for name in REFERENCE
        ),
    ]
    return ";\n".join(statements)


# ---------------------------------------------------------------- warehouse


def _valid_reference(name: str, columns: str) -> str:
    """Rows of a reference table with their key, values of their types, the first row per key."""
    key, typed = REFERENCE[name]
    casts = "".join(f" AND ({c} IS NULL OR TRY_CAST({c} AS {t}) IS NOT NULL)" for c, t in typed.items())
    return (
        f"SELECT {columns} FROM raw_{name} WHERE trim({key}) <> ''{casts} "
        f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY rowid) = 1"
    )


AIRPORTS_SQL = f"""
CREATE OR REPLACE TEMP TABLE airport_zones AS
WITH ops AS ({_valid_reference("airports", "faa, tzone")})
SELECT faa, tzone FROM (
    SELECT faa, tzone FROM ops
    UNION ALL
    SELECT faa, tzone FROM read_csv({_text(SUPPLEMENT_CSV)}, header = true, all_varchar = true)
    WHERE faa NOT IN (SELECT faa FROM ops)
) WHERE tzone IN (SELECT name FROM pg_timezone_names())
"""


def _in_zone(zones: list[str], zone: str, value: str) -> str:
    """``timezone(zone, value)`` with one constant zone per branch (a zone read from a column is far slower)."""
    return (
        "CASE " + zone + " " + " ".join(f"WHEN {_text(z)} THEN timezone({_text(z)}, {value})" for z in zones) + " END"
    )


def _minutes_of_day(hhmm: str) -> str:
    return f"to_minutes({hhmm} // 100 * 60 + {hhmm} % 100)"


PLANE_COLUMNS = "tailnum, " + ", ".join(f"CAST({c} AS INTEGER) AS {c}" for c in ("year", "engines", "seats"))


def flights_sql(zones: list[str]) -> str:
    """The flights that pass the contract, one per key, with their instants and the plane."""
    typed = ",\n        ".join(
        [
            *(
                f"CASE WHEN regexp_full_match(raw_{c}, '\\s*[+-]?\\d+\\s*') THEN TRY_CAST(raw_{c} AS INTEGER) END AS {c}"
                for c in INTEGERS
            ),
            *(f"nullif(trim(raw_{c}), '') AS {c}" for c in TEXTS),
            f"try_strptime(raw_time_hour, '{TIME_FORMAT}') AS time_hour",
        ]
    )
    rules = [
        *(f"nullif(trim(raw_{c}), '') IS NOT NULL" for c in ("carrier", "flight", "origin", "sched_dep_time")),
        *(f"(raw_{c} IS NULL OR {c} IS NOT NULL)" for c in (*INTEGERS, "time_hour")),
        *(f"coalesce({c} BETWEEN {lo} AND {hi}, true)" for c, (lo, hi) in RANGES.items()),
        *(f"coalesce({c} % 100 < 60, true)" for c in HHMM),
        *(f"coalesce(length({c}) <= {n}, true)" for c, n in MAX_LENGTH.items()),
        "NOT (dep_time IS NULL AND dep_delay IS NOT NULL)",
        "year = year(flight_date) AND month = month(flight_date) AND day = day(flight_date)",
        f"carrier IN (SELECT carrier FROM carriers) AND origin IN {NYC_ORIGINS} AND o.tzone IS NOT NULL",
        "d.tzone IS NOT NULL",
    ]
    where = "\n        AND ".join(rules)
    departure = _in_zone(zones, "origin_tz", f"flight_date + {_minutes_of_day('sched_dep_time')}")
    departure_at_dest = _in_zone(zones, "dest_tz", "sched_dep_utc")
    arrival = _in_zone(
        zones,
        "dest_tz",
        "CASE WHEN arr_that_day < dep_on_dest_clock THEN arr_that_day + INTERVAL 1 DAY ELSE arr_that_day END",
    )
    return f"""
CREATE OR REPLACE TEMP TABLE fct_flights AS
WITH carriers AS ({_valid_reference("airlines", "carrier")}),
planes AS ({_valid_reference("planes", PLANE_COLUMNS)}),
typed AS (SELECT *, rowid AS _line, {typed} FROM raw_flights),
valid AS (
    SELECT typed.*, o.tzone AS origin_tz, d.tzone AS dest_tz
    FROM typed
    LEFT JOIN airport_zones o ON o.faa = typed.origin
    LEFT JOIN airport_zones d ON d.faa = typed.dest
    WHERE {where}
    QUALIFY row_number() OVER (PARTITION BY flight_date, carrier, flight, origin, sched_dep_time
                               ORDER BY _file DESC, _line) = 1
),
departing AS (SELECT *, {departure} AS sched_dep_utc FROM valid),
on_dest_clock AS (SELECT *, {departure_at_dest} AS dep_on_dest_clock FROM departing),
placed AS (  -- the scheduled arrival: the first time at or after departure the destination's clock shows
    SELECT *, {arrival} AS sched_arr_utc
    FROM (SELECT *, date_trunc('day', dep_on_dest_clock) + {_minutes_of_day("sched_arr_time")} AS arr_that_day
          FROM on_dest_clock)
)
SELECT f.flight_date, f.carrier, f.flight, f.origin, f.sched_dep_time, f.tailnum, f.dest, f.distance, f.dep_delay,
    f.sched_dep_utc, f.sched_dep_utc + to_minutes(f.dep_delay) AS actual_dep_utc,
    f.sched_arr_utc + to_minutes(f.arr_delay) AS actual_arr_utc,
    f.arr_delay > {DELAY_THRESHOLD} AS is_delayed, f.dep_time IS NULL AS is_cancelled,
    f.dep_time IS NOT NULL AND f.arr_delay IS NULL AS is_diverted,
    p.year AS plane_year, p.seats, p.engines
FROM placed f
LEFT JOIN planes p ON p.tailnum = f.tailnum
"""


def weather_sql(first: dt.date, last: dt.date) -> str:
    """Reports of NYC airports: keyed, cleaned, deduplicated, short gaps filled; the New York days of the range."""
    clean = ", ".join(
        f"CASE WHEN {c} BETWEEN {lo} AND {hi} THEN {c} END AS {c}"
        if c != "wind_gust"
        else f"CASE WHEN {c} IS NULL THEN 0 WHEN {c} BETWEEN {lo} AND {hi} THEN {c} END AS {c}"
        for c, (lo, hi) in WEATHER_BOUNDS.items()
    )
    nexts = ", ".join(f"lead({c}) OVER w AS next_{c}" for c in WEATHER_BOUNDS)
    between = ", ".join(f"{c} + (next_{c} - {c}) * k / (missing + 1) AS {c}" for c in WEATHER_BOUNDS if c != "wind_dir")
    measures = ", ".join(WEATHER_BOUNDS)
    return f"""
CREATE OR REPLACE TEMP TABLE weather AS
WITH parsed AS (
    SELECT nullif(trim(origin), '') AS origin, try_strptime(time_hour, '{TIME_FORMAT}') AS observed, _day, rowid AS _row,
        {measures}
    FROM raw_weather
),
kept AS (
    SELECT origin, timezone('UTC', observed) AS observed_at_utc, {clean}
    FROM parsed
    WHERE origin IN {NYC_ORIGINS} AND minute(observed) = 0 AND second(observed) = 0
        AND CAST(timezone('{NEW_YORK}', timezone('UTC', observed)) AS DATE) = _day
    QUALIFY row_number() OVER (PARTITION BY origin, observed ORDER BY _day, _row) = 1
),
gaps AS (
    SELECT *, (epoch_us(next_observed) - epoch_us(observed_at_utc)) // {HOUR} - 1 AS missing
    FROM (SELECT *, lead(observed_at_utc) OVER w AS next_observed, {nexts}
          FROM kept WINDOW w AS (PARTITION BY origin ORDER BY observed_at_utc))
),
hours AS (
    SELECT origin, observed_at_utc + to_hours(k) AS observed_at_utc,
        next_observed + to_minutes({KNOWN_AFTER_MINUTES}) AS known_at_utc, {between},
        CASE WHEN 2 * k <= missing + 1 THEN wind_dir ELSE next_wind_dir END AS wind_dir
    FROM (SELECT *, unnest(generate_series(1, missing)) AS k FROM gaps WHERE missing BETWEEN 1 AND {MAX_GAP_HOURS})
)
SELECT * FROM (
    SELECT origin, observed_at_utc, observed_at_utc + to_minutes({KNOWN_AFTER_MINUTES}) AS known_at_utc, {measures}
    FROM kept
    UNION ALL BY NAME
    SELECT * FROM hours
)
WHERE CAST(timezone('{NEW_YORK}', observed_at_utc) AS DATE) BETWEEN DATE '{first}' AND DATE '{last}'
"""


# ---------------------------------------------------------------- features


def _holidays(first: dt.date, last: dt.date) -> str:
    """US federal holidays (5 U.S.C. 6103, observed dates) of the year before ``first`` to the year after ``last``."""

    def nth(month: int, isodow: int, n: int) -> str:  # the n-th weekday of a month
        start = f"make_date(y, {month}, 1)"
        return f"{start} + CAST(({isodow} - isodow({start}) + 7) % 7 + {7 * (n - 1)} AS INTEGER)"

    def observed(month: int, day: int) -> str:  # Saturday -> Friday, Sunday -> Monday
        d = f"make_date(y, {month}, {day})"
        return f"{d} + CASE isodow({d}) WHEN 6 THEN -1 WHEN 7 THEN 1 ELSE 0 END"

    last_monday_may = "make_date(y, 5, 31) - CAST((isodow(make_date(y, 5, 31)) + 6) % 7 AS INTEGER)"
    fixed = [
        observed(1, 1),
        nth(1, 1, 3),
        nth(2, 1, 3),
        last_monday_may,
        observed(7, 4),
        nth(9, 1, 1),
        nth(10, 1, 2),
        observed(11, 11),
        nth(11, 4, 4),
        observed(12, 25),
    ]
    return (
        f"SELECT unnest(list_concat([{', '.join(fixed)}], "
        f"CASE WHEN y >= 2021 THEN [{observed(6, 19)}] ELSE CAST([] AS DATE[]) END)) AS holiday "
        f"FROM range({first.year - 1}, {last.year + 2}) AS years(y)"
    )


def _counted(
    name: str, keys: str, events: str, counts: dict[str, str], order: str = "t, id", sums: dict[str, str] | None = None
) -> str:
    """A CTE: per (keys, instant ``t``) how many events (``n``) happened up to ``t``, and ``counts`` alike.

    Running counts are row numbers (``counts``: numbers over a part of the events, e.g. the
    delayed ones), several times cheaper in DuckDB than running sums (``sums``, taken at the
    instant's last row); the last row of an instant carries the totals. ``events`` selects
    ``keys``, ``t``, ``seen`` (t as a timestamp), ``id`` (unique) and what the others read.
    The keys are looked up as one 64-bit ``k = hash(keys)``: twice as fast in an ASOF join as
    text (a collision would merge two groups; the benchmark's checksum would show it).
    """
    sums = sums or {}
    extra = "".join(f", {expr} AS {column}" for column, expr in {**counts, **sums}.items())
    totals = "".join(f", max({column}) AS {column}" for column in counts)
    totals += "".join(f", arg_max({column}, n) AS {column}" for column in sums)
    return f"""{name} AS (
    SELECT hash({keys}) AS k, t, max(seen) AS seen, max(n) AS n{totals}
    FROM (SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {order}) AS n{extra} FROM ({events}))
    GROUP BY ALL
)"""


def _arrivals(group: str, keys: tuple[str, ...]) -> str:
    """The running counts of the group's labelled arrivals (all, and the delayed ones)."""
    key_list = ", ".join(keys)
    # delayed arrivals up to an on-time one: all arrivals up to it (the delayed ones first at the
    # same instant) minus the on-time ones up to it; up to a delayed one: its number among them
    of_kind = f"row_number() OVER (PARTITION BY {key_list}, is_delayed ORDER BY t, id)"
    events = (
        f"SELECT {key_list}, epoch_us(arr_at) AS t, arr_at AS seen, id, is_delayed FROM past "
        f"WHERE is_delayed IS NOT NULL AND actual_arr_utc IS NOT NULL AND "
        + " AND ".join(f"{k} IS NOT NULL" for k in keys)
    )
    delayed = {"delayed": f"CASE WHEN is_delayed THEN {of_kind} ELSE n - {of_kind} END"}
    return _counted(f"arrivals_{group}", key_list, events, delayed, order="t, is_delayed DESC, id")


def _history(group: str, keys: tuple[str, ...]) -> tuple[list[tuple], list[str]]:
    """The lookups of the group's arrivals (see ``_lookups``) and the columns they give, named ``<group>_...``:
    the arrivals in [predicted_at - window, predicted_at], and the last one counted."""
    table, end = f"arrivals_{group}", f"e_{group}"
    lookups = [(end, table, keys, "pa", False, ("n", "delayed", "seen"))]
    columns = []
    for days in HISTORY_WINDOW_DAYS:
        start = f"s{days}_{group}"
        lookups.append((start, table, keys, f"pa - {days * 24 * HOUR}", True, ("n", "delayed")))
        columns += [
            f"coalesce({end}_n, 0) - coalesce({start}_n, 0) AS {group}_n_{days}d",
            f"coalesce({end}_delayed, 0) - coalesce({start}_delayed, 0) AS {group}_delayed_{days}d",
        ]
    widest = f"s{max(HISTORY_WINDOW_DAYS)}_{group}"
    columns.append(
        f"CASE WHEN coalesce({end}_n, 0) - coalesce({widest}_n, 0) > 0 THEN {end}_seen END AS {group}_last_at"
    )
    return lookups, columns


def _lookups(points: str, lookups: list[tuple]) -> tuple[list[str], str]:
    """CTEs looking up, for every point of ``points`` (``pid``, keys and times), the running totals of an
    events table at some instants; and the joins bringing them back to the points.

    A lookup ``(alias, table, keys, instant, strict, columns)`` reads ``columns`` of the table's last row of
    the point's keys with ``t <= instant`` (``<`` if strict) as ``<alias>_<column>``. All the lookups of a
    table are one ``ASOF`` join: one row per point and instant (an id and the keys only; carrying more through
    an ASOF join is far slower), pivoted back per point.
    """
    by_table: dict[tuple, list[tuple]] = {}
    for lookup in lookups:
        by_table.setdefault(lookup[1:3], []).append(lookup)
    ctes, joins = [], []
    for (table, keys), items in by_table.items():
        name = f"{points}_{table}"
        instants = " ".join(
            f"WHEN {i} THEN {instant}{' - 1' if strict else ''}"
            for i, (_, _, _, instant, strict, _) in enumerate(items)
        )
        pivot = ", ".join(
            f"max(x.{c}) FILTER (WHERE b.bound = {i}) AS {alias}_{c}"
            for i, (alias, *_, columns) in enumerate(items)
            for c in columns
        )
        ctes.append(f"""{name} AS (
    SELECT b.pid, {pivot}
    FROM (SELECT pid, hash({", ".join(keys)}) AS k, bound, CASE bound {instants} END AS instant
          FROM {points} CROSS JOIN range({len(items)}) AS bounds(bound)) b
    ASOF LEFT JOIN {table} x ON x.k = b.k AND x.t <= b.instant
    GROUP BY b.pid
)""")
        joins.append(f"LEFT JOIN {name} USING (pid)")
    return ctes, "\n    ".join(joins)


AIRPORT_LOOKUPS = [  # (predicted_at - 2 h, predicted_at], [sched - 1 h, sched + 1 h] before the day's end
    ("d1", "departures", ("origin",), "pa", False, ("n", "delay", "seen")),
    ("d0", "departures", ("origin",), f"pa - {AIRPORT_WINDOW}", False, ("n", "delay")),
    ("c1", "cancellations", ("origin",), "pa", False, ("n", "seen")),
    ("c0", "cancellations", ("origin",), f"pa - {AIRPORT_WINDOW}", False, ("n",)),
    ("s1", "schedule", ("origin",), f"sched + {SCHEDULE_HALF}", False, ("n",)),
    ("sd", "schedule", ("origin",), "day_end", True, ("n",)),
    ("s0", "schedule", ("origin",), f"sched - {SCHEDULE_HALF}", True, ("n",)),
    ("w", "published", ("origin",), "pa", False, ("observed",)),  # the newest report published by then
]


def _points(name: str, columns: tuple[str, ...], where: str = "true") -> str:
    return (
        f"{name} AS (SELECT row_number() OVER () AS pid, * "
        f"FROM (SELECT DISTINCT {', '.join(columns)} FROM flights WHERE {where}))"
    )


# An airport point: the flights of an origin scheduled at the same instant (and day) share every
# airport value, and the histories grouped by the origin or its hour.
AIRPORT_POINT = ("origin", "sched", "day_end", "pa", "sched_dep_hour")


def features_sql(first: dt.date, last: dt.date, horizon_minutes: int) -> str:
    """One statement: ``features.flight_features`` of the flights of [first, last], as seen at predicted_at."""
    trends = {"temp_change_3h": "temp", "pressure_change_3h": "pressure", "wind_speed_change_3h": "wind_speed"}
    values: dict[str, str] = {
        **{c: f"f.{c}" for c in ("flight_date", "carrier", "flight", "origin", "sched_dep_time", "tailnum", "dest")},
        **{c: f"f.{c}" for c in ("sched_dep_utc", "predicted_at", "sched_dep_hour", "distance", "seats", "engines")},
        **{c: f"f.{c}" for c in ("is_delayed", "is_cancelled", "is_diverted")},
        "horizon_minutes": str(horizon_minutes),
        "month": "month(f.flight_date)",
        "weekday": "isodow(f.flight_date)",
        "sched_dep_minute": "f.sched_dep_time % 100",
        "days_to_holiday": "CASE WHEN h.behind IS NULL OR h.ahead <= -h.behind THEN h.ahead ELSE h.behind END",
        "plane_age": "year(f.flight_date) - f.plane_year",
        **{c: f"r.{c}" for c in (*WEATHER_MEASURES, *trends, "precip_sum_3h")},
        "weather_age_minutes": f"(f.pa - r.observed) // {MINUTE}",
        "weather_known_at": "r.used_known_at",
        "origin_sched_flights_2h": "a.scheduled",
        "origin_departed_2h": "a.departed",
        "origin_mean_dep_delay_2h": "a.delay / nullif(a.departed, 0)",
        "origin_cancelled_2h": "a.cancelled",
        "airport_state_known_at": "greatest(CASE WHEN a.departed > 0 THEN a.last_departure END, "
        "CASE WHEN a.cancelled > 0 THEN a.last_cancellation END)",
    }
    ctes, joins, airport_lookups, airport_columns, used = [], [], list(AIRPORT_LOOKUPS), [], []
    for group, keys in HISTORY_GROUPS.items():
        ctes.append(_arrivals(group, keys))
        lookups, columns = _history(group, keys)
        if set(keys) <= set(AIRPORT_POINT):  # looked up with the airport's values
            h = "a"
            airport_lookups += lookups
            airport_columns += columns
        else:
            h = f"h_{group}"
            present = " AND ".join(f"{k} IS NOT NULL" for k in keys)  # no tail number, no plane history
            lookup_ctes, lookup_joins = _lookups(f"points_{group}", lookups)
            ctes += [_points(f"points_{group}", (*keys, "pa"), present), *lookup_ctes]
            ctes.append(
                f"history_{group} AS (SELECT {', '.join(f'p.{k}' for k in keys)}, p.pa, {', '.join(columns)}\n"
                f"    FROM points_{group} p\n    {lookup_joins})"
            )
            joins.append(
                f"LEFT JOIN history_{group} {h} ON {h}.pa = f.pa" + "".join(f" AND {h}.{k} = f.{k}" for k in keys)
            )
        used.append(f"{h}.{group}_last_at")
        for days in HISTORY_WINDOW_DAYS:
            values[f"{group}_n_{days}d"] = f"{h}.{group}_n_{days}d"
            values[f"{group}_delay_rate_{days}d"] = f"{h}.{group}_delayed_{days}d / nullif({h}.{group}_n_{days}d, 0)"
    values["history_known_at"] = f"greatest({', '.join(used)})"
    if set(values) != set(COLUMNS):
        raise RuntimeError(f"the anchor and domain.features disagree on {sorted(set(values) ^ set(COLUMNS))}")
    select = ",\n    ".join(f"CAST({values[c]} AS {t}) AS {c}" for c, t in COLUMNS.items())
    ny = _text(NEW_YORK)
    departures = _counted(
        "departures",
        "origin",
        "SELECT origin, epoch_us(dep_at) AS t, dep_at AS seen, id, dep_delay FROM past WHERE actual_dep_utc IS NOT NULL",
        {},
        sums={"delay": "sum(dep_delay) OVER (PARTITION BY origin ORDER BY t, id ROWS UNBOUNDED PRECEDING)"},
    )
    cancellations = _counted(
        "cancellations",
        "origin",
        "SELECT origin, epoch_us(sched_dep_utc) AS t, sched_dep_utc AS seen, id FROM past WHERE is_cancelled",
        {},
    )
    schedule = _counted(
        "schedule", "origin", "SELECT origin, epoch_us(sched_dep_utc) AS t, sched_dep_utc AS seen, id FROM past", {}
    )
    history_ctes = ",\n".join(ctes)
    airport_columns = ", ".join(airport_columns)
    airport_ctes, airport_joins = _lookups("airport_points", airport_lookups)
    airport_ctes = ",\n".join([_points("airport_points", AIRPORT_POINT), *airport_ctes])
    history_joins = "\n".join(joins)
    return f"""
CREATE OR REPLACE TABLE {TABLE} AS
WITH days AS (  -- the instants a New York day starts and ends
    SELECT flight_date, timezone({ny}, CAST(flight_date AS TIMESTAMP)) AS day_start,
        epoch_us(timezone({ny}, CAST(flight_date + 1 AS TIMESTAMP))) AS day_end
    FROM (SELECT DISTINCT flight_date FROM fct_flights)
),
flights AS (
    SELECT fct_flights.*, day_end, sched_dep_utc - to_minutes({horizon_minutes}) AS predicted_at,
        epoch_us(predicted_at) AS pa, epoch_us(sched_dep_utc) AS sched, sched_dep_time // 100 AS sched_dep_hour
    FROM fct_flights JOIN days USING (flight_date)
    WHERE flight_date BETWEEN DATE '{first}' AND DATE '{last}'
),
past AS (  -- a flight's outcomes are usable from the start of its New York day, when its file lands
    SELECT fct_flights.rowid AS id, fct_flights.*, sched_dep_time // 100 AS sched_dep_hour,
        greatest(actual_dep_utc, day_start) AS dep_at, greatest(actual_arr_utc, day_start) AS arr_at
    FROM fct_flights JOIN days USING (flight_date)
    WHERE flight_date BETWEEN DATE '{first}' - {HISTORY_LOOKBACK_DAYS} AND DATE '{last}'
),
{history_ctes},
holidays AS ({_holidays(first, last)}),
day_holiday AS (  -- days to the coming holiday and (negative) since the last one
    SELECT d.flight_date, min(holiday) FILTER (WHERE holiday >= d.flight_date) - d.flight_date AS ahead,
        max(holiday) FILTER (WHERE holiday < d.flight_date) - d.flight_date AS behind
    FROM (SELECT DISTINCT flight_date FROM flights) d CROSS JOIN holidays
    GROUP BY d.flight_date
),
reports AS (  -- each weather row with its 3-hour trends
    SELECT origin, epoch_us(observed_at_utc) AS observed, epoch_us(known_at_utc) AS known,
        {", ".join(WEATHER_MEASURES)},
        {", ".join(f"{m} - first_value({m}) OVER ago_3h AS {c}" for c, m in trends.items())},
        sum(precip) OVER last_3h AS precip_sum_3h, max(known_at_utc) OVER since_3h AS used_known_at
    FROM weather
    WINDOW ago_3h AS (PARTITION BY origin ORDER BY epoch_us(observed_at_utc)
                      RANGE BETWEEN {TREND} PRECEDING AND {TREND} PRECEDING),
        last_3h AS (PARTITION BY origin ORDER BY epoch_us(observed_at_utc)
                    RANGE BETWEEN {TREND - HOUR} PRECEDING AND CURRENT ROW),
        since_3h AS (PARTITION BY origin ORDER BY epoch_us(observed_at_utc)
                     RANGE BETWEEN {TREND} PRECEDING AND CURRENT ROW)
),
published AS (  -- what was current at each publication instant t: the newest observation published then
    SELECT hash(origin) AS k, known AS t, max(observed) AS observed FROM reports GROUP BY ALL
),
{departures},
{cancellations},
{schedule},
{airport_ctes},
airport AS (
    SELECT p.origin, p.sched, p.day_end,
        coalesce(d1_n, 0) - coalesce(d0_n, 0) AS departed, coalesce(d1_delay, 0) - coalesce(d0_delay, 0) AS delay,
        coalesce(c1_n, 0) - coalesce(c0_n, 0) AS cancelled,
        least(coalesce(s1_n, 0), coalesce(sd_n, 0)) - coalesce(s0_n, 0) AS scheduled,
        d1_seen AS last_departure, c1_seen AS last_cancellation, w_observed AS report, {airport_columns}
    FROM airport_points p
    {airport_joins}
)
SELECT {select}
FROM flights f
LEFT JOIN day_holiday h ON h.flight_date = f.flight_date
LEFT JOIN airport a ON a.origin = f.origin AND a.sched = f.sched AND a.day_end = f.day_end
LEFT JOIN reports r ON r.origin = f.origin AND r.observed = a.report AND r.known > f.pa - {MAX_WEATHER_AGE}
{history_joins}
"""


# ---------------------------------------------------------------- the whole run


def load_lake(
    conn: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    reference_dir: Path,
    weather_csv: Path,
    first: dt.date,
    last: dt.date,
    progress: Callable[[str], object] = print,
) -> None:
    conn.execute(lake_sql(landing_files(landing_dir, first, last, progress), reference_dir, weather_csv))


def load_warehouse(conn: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> None:
    conn.execute(AIRPORTS_SQL)
    zones = [z for (z,) in conn.execute("SELECT DISTINCT tzone FROM airport_zones ORDER BY 1").fetchall()]
    conn.execute(flights_sql(zones))
    conn.execute(weather_sql(first, last))


def build_feature_table(conn: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date, horizon_minutes: int) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS features")
    conn.execute(features_sql(first, last, horizon_minutes))


def build(
    conn: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    reference_dir: Path,
    weather_csv: Path,
    first: dt.date,
    last: dt.date,
    horizon_minutes: int = 60,
    progress: Callable[[str], object] = print,
    stage: Callable[[str], object] | None = None,
) -> dict[str, float]:
    """Lake, warehouse and ``features.flight_features`` of [first, last] in ``conn``; wall seconds per stage.

    ``stage(name)``, if given, is a context manager around each stage (the benchmark's Stopwatch).
    """
    if not 1 <= horizon_minutes <= 24 * 60:
        raise ValueError(f"horizon must be 1..1440 minutes, got {horizon_minutes}")
    conn.execute("SET TimeZone = 'UTC'")  # instants leave DuckDB as UTC; no result depends on it
    steps = {
        "lake": lambda: load_lake(conn, landing_dir, reference_dir, weather_csv, first, last, progress),
        "warehouse": lambda: load_warehouse(conn, first, last),
        "features": lambda: build_feature_table(conn, first, last, horizon_minutes),
    }
    seconds = {}
    for name, step in steps.items():
        started = time.perf_counter()
        if stage is None:
            step()
        else:
            with stage(name):
                step()
        seconds[name] = time.perf_counter() - started
        if stage is None:
            progress(f"{name}: {seconds[name]:.1f} s")
    return seconds


def build_features(
    landing_dir: Path,
    reference_dir: Path,
    weather_csv: Path,
    first: dt.date,
    last: dt.date,
    horizon_minutes: int = 60,
    progress: Callable[[str], object] = print,
) -> tuple[pl.DataFrame, dict[str, float]]:
    """The pandas baseline's interface: (features of [first, last], wall seconds per stage), in memory."""
    with duckdb.connect() as conn:
        seconds = build(conn, landing_dir, reference_dir, weather_csv, first, last, horizon_minutes, progress)
        return conn.execute(f"SELECT * FROM {TABLE}").pl(), seconds


def run(
    inputs: Inputs,
    work: Path,
    watch: Stopwatch,
    *,
    duckdb_memory_limit: str | None = None,
    first: dt.date | None = None,
    last: dt.date | None = None,
) -> Path:
    """Contender (e) of ``benchmarks.contender``: the inputs in, each stage timed by ``watch``, the DuckDB file
    holding ``features.flight_features`` out (the intermediate tables are temporary)."""
    from benchmarks.data import FIRST_DAY, LAST_DAY
    from benchmarks.measure import progress

    config = {"memory_limit": duckdb_memory_limit} if duckdb_memory_limit else {}
    database = Path(work) / "anchor.duckdb"
    with duckdb.connect(str(database), config=config) as conn:
        build(
            conn,
            inputs.landing_dir,
            inputs.reference_dir,
            inputs.weather_csv,
            first or FIRST_DAY,
            last or LAST_DAY,
            progress=lambda message: progress(f"{watch.label}: {message}"),
            stage=lambda name: watch.stage(name, rows=inputs.flights),
        )
    return database
