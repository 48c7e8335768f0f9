"""The flights contract: what a raw flight row must look like to enter the warehouse.

A raw row breaking the contract is not loaded and not lost: it goes to
``quarantine.flights`` with the FIRST rule it fails, checked in this order:

1. ``parse_error``     the CSV line had the wrong number of fields (all values are null).
2. ``missing_key``     carrier, flight, origin or sched_dep_time is empty.
3. ``bad_type``        a value does not read as its type: integers must be plain digits
                       with an optional sign (``1.5`` is refused, not rounded), time_hour
                       must be ``YYYY-MM-DDTHH:MM:SSZ``. The detail names each column.
4. ``out_of_range``    month 1-12, day 1-31, hour 0-24, minute 0-59, every hhmm 0-2400 with
                       minutes < 60, flight >= 1, |delay| <= 1440 min, 0 < distance < 6000
                       miles, 0 <= air_time <= 1000 min, carrier at most 2 characters, tailnum
                       10, origin and dest 3 (the bounds of ``domain.flights``, which the staging
                       contract checks too). The detail names each column.
5. ``inconsistent``    dep_time is empty (a cancelled flight) but dep_delay is given.
6. ``date_mismatch``   year/month/day is not the day of the partition the row came in.
7. ``unknown_carrier`` carrier is not in ``core.dim_carriers``.
8. ``unknown_origin``  origin is not EWR, JFK or LGA, or has no known time zone in ``core.dim_airports``.
9. ``unknown_dest``    dest is empty or has no known time zone in ``core.dim_airports``
                       (its arrival could not be placed in time).
10. ``duplicate_key``   another valid row has the same (flight_date, carrier, flight, origin,
                       sched_dep_time); the row from the latest ``_source_file`` by name,
                       then the first line, is kept.

A flight whose tail number has no plane row is valid (``core.fct_flights.has_plane``).
"""

from __future__ import annotations

from ml_platform.domain.flights import (  # noqa: F401 - SOURCE_COLUMNS: read as contract.SOURCE_COLUMNS
    BOUNDS,
    MAX_LENGTH,
    NYC_ORIGINS,
    REQUIRED_SOURCE_COLUMNS,
    SOURCE_COLUMNS,
    SOURCE_KEY,
)

RULES = (
    "parse_error",
    "missing_key",
    "bad_type",
    "out_of_range",
    "inconsistent",
    "date_mismatch",
    "unknown_carrier",
    "unknown_origin",
    "unknown_dest",
    "duplicate_key",
)

KEY_COLUMNS = SOURCE_KEY
INTEGER_COLUMNS = (
    "year",
    "month",
    "day",
    "dep_time",
    "sched_dep_time",
    "dep_delay",
    "arr_time",
    "sched_arr_time",
    "arr_delay",
    "flight",
    "air_time",
    "distance",
    "hour",
    "minute",
)
TEXT_COLUMNS = ("carrier", "tailnum", "origin", "dest")
HHMM_COLUMNS = ("dep_time", "sched_dep_time", "arr_time", "sched_arr_time")
TIME_HOUR_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# Raw lake columns and the DuckDB types the contract allows for them.
_INTS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT")
RAW_CONTRACT: dict[str, tuple[str, ...]] = {
    **{c: ("VARCHAR",) for c in SOURCE_COLUMNS},
    "_source_file": ("VARCHAR",),
    "_source_sha256": ("VARCHAR",),
    "_source_line": _INTS,
    "_parse_error": ("VARCHAR",),
    "_source_lines": _INTS,
}
REQUIRED_RAW_COLUMNS = (*REQUIRED_SOURCE_COLUMNS, "_source_file", "_source_line")

_INT_PATTERN = r"\s*[+-]?\d+\s*"

# column -> SQL condition that must hold (NULL values pass: missing is not out of range). The
# flight's own bounds and text lengths are the contract's (domain.flights), so every row the
# staging contract would refuse is quarantined here first.
RANGES: dict[str, str] = {
    "month": "month BETWEEN 1 AND 12",
    "day": "day BETWEEN 1 AND 31",
    "hour": "hour BETWEEN 0 AND 24",
    "minute": "minute BETWEEN 0 AND 59",
    **{c: f"{c} BETWEEN {low} AND {high}" for c, (low, high) in BOUNDS.items()},
    **{c: f"{c} BETWEEN 0 AND 2400 AND {c} % 100 < 60" for c in HHMM_COLUMNS},
    "air_time": "air_time BETWEEN 0 AND 1000",
}
LENGTHS: dict[str, int] = MAX_LENGTH
# Raw values kept in quarantine.flights.raw_values are cut to this many characters.
MAX_KEPT_CHARS = 200


def typed_sql() -> str:
    """Select-list turning ``raw_<col>`` text into typed ``<col>`` (NULL when it does not read)."""
    parts = [
        f"CASE WHEN regexp_full_match(raw_{c}, '{_INT_PATTERN}') THEN TRY_CAST(raw_{c} AS INTEGER) END AS {c}"
        for c in INTEGER_COLUMNS
    ]
    parts += [f"NULLIF(trim(raw_{c}), '') AS {c}" for c in TEXT_COLUMNS]
    parts.append(f"timezone('UTC', try_strptime(raw_time_hour, '{TIME_HOUR_FORMAT}')) AS time_hour")
    return ",\n".join(parts)


def _details(cases: list[str]) -> str:
    return f"NULLIF(concat_ws('; ', {', '.join(cases)}), '')"


def missing_key_sql() -> str:
    return _details([f"CASE WHEN NULLIF(trim(raw_{c}), '') IS NULL THEN '{c} is empty' END" for c in KEY_COLUMNS])


def bad_type_sql() -> str:
    cols = (*INTEGER_COLUMNS, "time_hour")
    return _details([f"CASE WHEN raw_{c} IS NOT NULL AND {c} IS NULL THEN '{c}=' || raw_{c} END" for c in cols])


def out_of_range_sql() -> str:
    ranges = [f"CASE WHEN NOT ({cond}) THEN '{c}=' || CAST({c} AS VARCHAR) END" for c, cond in RANGES.items()]
    lengths = [
        f"CASE WHEN length({c}) > {n} THEN '{c} has ' || length({c}) || ' characters (at most {n})' END"
        for c, n in LENGTHS.items()
    ]
    return _details(ranges + lengths)


def kept_value_sql(column: str) -> str:
    """A raw value as quarantine keeps it: whole up to ``MAX_KEPT_CHARS``, else its start and its length."""
    return (
        f"CASE WHEN length({column}) > {MAX_KEPT_CHARS} THEN left({column}, {MAX_KEPT_CHARS}) || '... ('"
        f" || length({column}) || ' characters)' ELSE {column} END"
    )


def rule_sql() -> str:
    """The first failing rule (before duplicate_key), NULL for a row that passes."""
    nyc = ", ".join(f"'{o}'" for o in NYC_ORIGINS)
    return f"""CASE
        WHEN _parse_error IS NOT NULL THEN 'parse_error'
        WHEN _missing_key IS NOT NULL THEN 'missing_key'
        WHEN _bad_type IS NOT NULL THEN 'bad_type'
        WHEN _out_of_range IS NOT NULL THEN 'out_of_range'
        WHEN dep_time IS NULL AND dep_delay IS NOT NULL THEN 'inconsistent'
        WHEN year IS DISTINCT FROM year(flight_date) OR month IS DISTINCT FROM month(flight_date)
             OR day IS DISTINCT FROM day(flight_date) THEN 'date_mismatch'
        WHEN NOT _carrier_known THEN 'unknown_carrier'
        WHEN origin NOT IN ({nyc}) OR origin_tzone IS NULL THEN 'unknown_origin'
        WHEN dest IS NULL OR dest_tzone IS NULL THEN 'unknown_dest'
    END"""


def detail_sql() -> str:
    """A sentence for a person, saying what exactly failed (``rule`` must exist; duplicates: ``duplicate_detail_sql``)."""
    return """CASE rule
        WHEN 'parse_error' THEN _parse_error
        WHEN 'missing_key' THEN _missing_key
        WHEN 'bad_type' THEN 'will not cast: ' || _bad_type
        WHEN 'out_of_range' THEN 'out of range: ' || _out_of_range
        WHEN 'inconsistent' THEN 'dep_time is empty (cancelled) but dep_delay is ' || dep_delay
        WHEN 'date_mismatch' THEN 'year/month/day ' || coalesce(raw_year, '?') || '-' || coalesce(raw_month, '?')
             || '-' || coalesce(raw_day, '?') || ' is not the partition day ' || flight_date
        WHEN 'unknown_carrier' THEN 'carrier ' || carrier || ' is not in core.dim_carriers'
        WHEN 'unknown_origin' THEN 'origin ' || origin || ' is not a New York airport with a known time zone'
        WHEN 'unknown_dest' THEN 'dest ' || coalesce(dest, '(empty)') || ' has no known time zone in core.dim_airports'
    END"""


def duplicate_detail_sql(kept_file: str, kept_line: str) -> str:
    """The detail of a ``duplicate_key`` row, naming the row that was kept."""
    return f"'same key as the kept row ' || {kept_file} || ' line ' || {kept_line}"
