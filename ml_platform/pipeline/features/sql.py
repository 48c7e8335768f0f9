"""The one SELECT that describes every flight of a range as it looked at ``predicted_at``.

``FEATURES_SQL`` returns one row per flight of ``core.fct_flights`` with
``flight_date`` in [$first, $last], with exactly the columns of
``domain.features.COLUMNS``. Parameters (all bound, never formatted in):

* ``$first``, ``$last``: the New York days described;
* ``$horizon``: minutes between the prediction and the scheduled departure;
* ``$flights_from``, ``$weather_from``: the first day of flights and of weather read
  as history (``first`` minus ``HISTORY_LOOKBACK_DAYS`` / ``WEATHER_LOOKBACK_DAYS``),
  so a day's rows never depend on older data;
* ``$holidays``: the federal holidays around the range (``holidays.holidays_around``).

How "known at predicted_at" is enforced, set-based (no per-flight subquery):
each kind of past event (an arrival, a departure, a cancellation, a scheduled
departure) is aggregated per group and time and turned into running totals; a
flight's count over a window (a, b] is the running total ``ASOF``-joined at b
minus the one at a. Weather reports are ``ASOF``-joined on their ``known_at_utc``.

A flight's outcomes are in the warehouse only once its New York day is (the day's
file holds them), so an event is usable from ``greatest(known_at, start of its
flight day)``. In 2013 this never moves an event (the earliest scheduled departure
is 01:06 and no flight left more than 43 minutes early), but it makes sure that
no flight of a later day ever shapes an earlier day's rows, whatever the horizon:
a day's features are the same whether later days are loaded or not.
"""

from __future__ import annotations

from ml_platform.domain.calendar import NEW_YORK
from ml_platform.domain.features import COLUMNS, HISTORY_GROUPS, HISTORY_WINDOW_DAYS, WEATHER_MEASURES

# Windows are whole hours (an absolute length): "7 days" is 168 h even across a DST change.
HISTORY_WINDOW_HOURS = {days: 24 * days for days in HISTORY_WINDOW_DAYS}
AIRPORT_WINDOW_HOURS = 2  # departures and cancellations in (predicted_at - 2 h, predicted_at]
SCHEDULE_HALF_WINDOW_HOURS = 1  # scheduled departures within +-1 h of the flight's own
TREND_HOURS = 3  # weather trends: the latest report against the one 3 h before
MAX_WEATHER_AGE_HOURS = 6  # an older report is not "current weather": NULL instead (2013 gaps: <= 5 h)
# History of day D reads flights from D - 32: the 28-day window, up to 1 day of horizon,
# and up to 3 days between a flight's day and its arrival (overnight + 24 h delay).
HISTORY_LOOKBACK_DAYS = max(HISTORY_WINDOW_DAYS) + 4
# Weather of day D reads reports from D - 3: the 6-hour age limit, 3 h of trend, 1 day of horizon.
WEATHER_LOOKBACK_DAYS = 3


def _running_totals(name: str, keys: tuple[str, ...], time_sql: str, where: str, sums: dict[str, str]) -> str:
    """A CTE of running totals of past events per group, one row per (group, time)."""
    key_list = ", ".join(keys)
    inner = ", ".join(f"{expr} AS {col}" for col, expr in sums.items())
    running = ", ".join(f"sum({col}) OVER w AS cum_{col}" for col in sums)
    return f"""{name} AS (
    SELECT {key_list}, t, {running}
    FROM (SELECT {key_list}, {time_sql} AS t, {inner} FROM past WHERE {where} GROUP BY ALL)
    WINDOW w AS (PARTITION BY {key_list} ORDER BY t ROWS UNBOUNDED PRECEDING)
)"""


def _asof(points: str, table: str, alias: str, keys: tuple[str, ...], condition: str) -> tuple[str, str]:
    """The latest running total (``a``) of a point's (``f``) group whose time ``a.t`` meets ``condition``.

    Returns a lookup CTE (``ASOF`` join of the points' ids and keys only: carrying
    every column through a dozen ASOF joins is more than twice as slow) and the join
    that brings its columns to the point as ``alias.<column>``.
    """
    equal = " AND ".join(f"f.{k} = a.{k}" for k in keys)
    cte = (
        f"lookup_{alias} AS (SELECT f.point_id, a.* FROM {points} f "
        f"ASOF LEFT JOIN {table} a ON {equal} AND {condition})"
    )
    return cte, f"LEFT JOIN lookup_{alias} AS {alias} ON {alias}.point_id = f.point_id"


def _between(alias_end: str, alias_start: str, column: str) -> str:
    """Events counted between two running totals (missing totals are zero)."""
    return f"(coalesce({alias_end}.cum_{column}, 0) - coalesce({alias_start}.cum_{column}, 0))"


# ---------------------------------------------------------------- the CTEs

_FLIGHTS = f"""flights AS (
    SELECT flight_date, carrier, flight, origin, sched_dep_time, tailnum, dest, sched_dep_utc,
        sched_dep_utc - to_minutes(CAST($horizon AS BIGINT)) AS predicted_at,
        timezone('{NEW_YORK}', CAST(flight_date + 1 AS TIMESTAMP)) AS day_end_utc,
        sched_dep_time // 100 AS sched_dep_hour, sched_dep_time % 100 AS sched_dep_minute,
        distance, plane_year, seats, engines, is_delayed, is_cancelled, is_diverted
    FROM core.fct_flights WHERE flight_date BETWEEN $first AND $last
),
targets AS (
    SELECT *,
        predicted_at - INTERVAL {AIRPORT_WINDOW_HOURS} HOUR AS airport_window_start,
        {", ".join(f"predicted_at - INTERVAL {h} HOUR AS history_start_{d}d" for d, h in HISTORY_WINDOW_HOURS.items())},
        sched_dep_utc - INTERVAL {SCHEDULE_HALF_WINDOW_HOURS} HOUR AS schedule_from,
        sched_dep_utc + INTERVAL {SCHEDULE_HALF_WINDOW_HOURS} HOUR AS schedule_to
    FROM flights
),
past AS (
    SELECT origin, dest, carrier, tailnum, sched_dep_time // 100 AS sched_dep_hour, sched_dep_utc,
        actual_dep_utc, dep_delay, actual_arr_utc, is_delayed, is_cancelled,
        timezone('{NEW_YORK}', CAST(flight_date AS TIMESTAMP)) AS day_start_utc
    FROM core.fct_flights WHERE flight_date BETWEEN $flights_from AND $last
)"""

_HOLIDAYS = """day_holiday AS (
    SELECT d.flight_date,
        arg_min(h.holiday - d.flight_date,
                2 * abs(h.holiday - d.flight_date) - CAST(h.holiday >= d.flight_date AS INTEGER)) AS days_to_holiday
    FROM (SELECT DISTINCT flight_date FROM flights) d
    CROSS JOIN (SELECT unnest(CAST($holidays AS DATE[])) AS holiday) h
    GROUP BY d.flight_date
)"""

_measures = ", ".join(f"w.{m}" for m in WEATHER_MEASURES)
_WEATHER = f"""weather AS (
    SELECT origin, observed_at_utc, known_at_utc, {", ".join(WEATHER_MEASURES)}
    FROM staging.weather WHERE weather_date BETWEEN $weather_from AND $last
),
weather_trends AS (
    SELECT w.origin, w.observed_at_utc, w.known_at_utc, {_measures},
        w.temp - b.temp AS temp_change_3h,
        w.pressure - b.pressure AS pressure_change_3h,
        w.wind_speed - b.wind_speed AS wind_speed_change_3h,
        sum(w.precip) OVER last_3h AS precip_sum_3h,
        greatest(max(w.known_at_utc) OVER last_3h, b.known_at_utc) AS used_known_at
    FROM weather w
    LEFT JOIN weather b ON b.origin = w.origin AND b.observed_at_utc = w.observed_at_utc - INTERVAL {TREND_HOURS} HOUR
    WINDOW last_3h AS (PARTITION BY w.origin ORDER BY w.observed_at_utc
                       RANGE BETWEEN INTERVAL {TREND_HOURS - 1} HOUR PRECEDING AND CURRENT ROW)
),
reports AS (
    -- At each publication time, the newest observation published then (imputed hours share
    -- the known_at of the report after their gap; that report is the newest).
    SELECT * FROM weather_trends
    QUALIFY row_number() OVER (PARTITION BY origin, known_at_utc ORDER BY observed_at_utc DESC) = 1
)"""

_EVENTS = [
    _running_totals(
        "departures",
        ("origin",),
        "greatest(actual_dep_utc, day_start_utc)",
        "actual_dep_utc IS NOT NULL",
        {"n": "count(*)", "delay": "sum(dep_delay)"},
    ),
    _running_totals("cancellations", ("origin",), "sched_dep_utc", "is_cancelled", {"n": "count(*)"}),
    _running_totals("schedule", ("origin",), "sched_dep_utc", "true", {"n": "count(*)"}),
    *(
        _running_totals(
            f"arrivals_{group}",
            keys,
            "greatest(actual_arr_utc, day_start_utc)",
            "is_delayed IS NOT NULL AND actual_arr_utc IS NOT NULL" + "".join(f" AND {k} IS NOT NULL" for k in keys),
            {"n": "count(*)", "delayed": "count(*) FILTER (WHERE is_delayed)"},
        )
        for group, keys in HISTORY_GROUPS.items()
    ),
]

# ---------------------------------------------------------------- the lookups, once per point
# Flights that share a group and a prediction time share every looked-up value, so each
# family is looked up once per distinct point and joined to the flights once, not once per
# lookup. At 10 times the real year (ten flights per point of an airport) one statement
# took 42 s instead of 130 s, when 23 hash tables of every flight had to spill to disk.

# At an airport, a flight's origin, day and scheduled departure fix every window it needs.
AIRPORT_POINT = ("origin", "sched_dep_hour", "flight_date", "sched_dep_utc")
_AIRPORT_TIMES = ("predicted_at", "day_end_utc", "airport_window_start", "schedule_from", "schedule_to")
_HISTORY_STARTS = tuple(f"history_start_{days}d" for days in HISTORY_WINDOW_DAYS)


def _point_values(
    name: str, key: tuple[str, ...], times: tuple[str, ...], lookups: list[tuple[str, str]], values: dict[str, str]
) -> tuple[list[str], str, list[str]]:
    """CTEs computing ``values`` once per distinct ``key`` of the flights, the join bringing them back as
    ``name``, and the names of the values.

    ``times`` are the flight's window bounds, which its key determines.
    """
    return (
        [
            f"points_{name} AS (SELECT row_number() OVER () AS point_id, * "
            f"FROM (SELECT DISTINCT {', '.join((*key, *times))} FROM targets))",
            *(cte for cte, _ in lookups),
            f"values_{name} AS (SELECT {', '.join(f'f.{k}' for k in key)}, "
            + ", ".join(f"{expr} AS {column}" for column, expr in values.items())
            + f" FROM points_{name} f "
            + " ".join(join for _, join in lookups)
            + ")",
        ],
        f"LEFT JOIN values_{name} AS {name} ON " + " AND ".join(f"{name}.{k} = f.{k}" for k in key),
        list(values),
    )


def _history(group: str, keys: tuple[str, ...], points: str) -> tuple[list[tuple[str, str]], dict[str, str], str]:
    """Lookups and values of one history group, and the time of the newest arrival it used."""
    table = f"arrivals_{group}"
    lookups = [_asof(points, table, f"{group}_end", keys, "f.predicted_at >= a.t")]  # [start, predicted_at]
    values = {}
    known = " AND ".join(f"f.{k} IS NOT NULL" for k in keys)  # no tail number: no plane history
    for days in HISTORY_WINDOW_DAYS:
        lookups.append(_asof(points, table, f"{group}_{days}d", keys, f"f.history_start_{days}d > a.t"))
        n = _between(f"{group}_end", f"{group}_{days}d", "n")
        delayed = _between(f"{group}_end", f"{group}_{days}d", "delayed")
        values[f"{group}_delay_rate_{days}d"] = f"CASE WHEN {known} THEN {delayed} / nullif({n}, 0) END"
        values[f"{group}_n_{days}d"] = f"CASE WHEN {known} THEN {n} END"
    widest = _between(f"{group}_end", f"{group}_{max(HISTORY_WINDOW_DAYS)}d", "n")
    return lookups, values, f"CASE WHEN {widest} > 0 THEN {group}_end.t END"


# Weather, airport state and the history of the groups within an airport's hour.
_fresh = f"wx.known_at_utc > f.predicted_at - INTERVAL {MAX_WEATHER_AGE_HOURS} HOUR"
_departed = _between("dep_end", "dep_start", "n")
_cancelled = _between("can_end", "can_start", "n")
_AT = "points_airport"
_airport_lookups = [
    _asof(_AT, "reports", "wx", ("origin",), "f.predicted_at >= a.known_at_utc"),
    # (predicted_at - 2 h, predicted_at]: totals at the end minus totals at the start.
    _asof(_AT, "departures", "dep_end", ("origin",), "f.predicted_at >= a.t"),
    _asof(_AT, "departures", "dep_start", ("origin",), "f.airport_window_start >= a.t"),
    _asof(_AT, "cancellations", "can_end", ("origin",), "f.predicted_at >= a.t"),
    _asof(_AT, "cancellations", "can_start", ("origin",), "f.airport_window_start >= a.t"),
    # [sched - 1 h, sched + 1 h], only flights of this day or before (later days are not loaded yet).
    _asof(_AT, "schedule", "sch_end", ("origin",), "f.schedule_to >= a.t"),
    _asof(_AT, "schedule", "sch_day", ("origin",), "f.day_end_utc > a.t"),
    _asof(_AT, "schedule", "sch_start", ("origin",), "f.schedule_from > a.t"),
]
_airport_values = {
    **{
        c: f"CASE WHEN {_fresh} THEN wx.{c} END"
        for c in (*WEATHER_MEASURES, "temp_change_3h", "pressure_change_3h", "wind_speed_change_3h", "precip_sum_3h")
    },
    "weather_age_minutes": f"CASE WHEN {_fresh} THEN (epoch(f.predicted_at) - epoch(wx.observed_at_utc)) // 60 END",
    "weather_known_at": f"CASE WHEN {_fresh} THEN wx.used_known_at END",
    "origin_sched_flights_2h": "least(coalesce(sch_end.cum_n, 0), coalesce(sch_day.cum_n, 0))"
    " - coalesce(sch_start.cum_n, 0)",
    "origin_departed_2h": _departed,
    "origin_mean_dep_delay_2h": f"{_between('dep_end', 'dep_start', 'delay')} / nullif({_departed}, 0)",
    "origin_cancelled_2h": _cancelled,
    "airport_state_known_at": f"greatest(CASE WHEN {_departed} > 0 THEN dep_end.t END,"
    f" CASE WHEN {_cancelled} > 0 THEN can_end.t END)",
}
_FAMILIES: dict[str, tuple[list[str], str, list[str]]] = {}  # name: (CTEs, join, columns)
_airport_history_used = []
for _group, _keys in HISTORY_GROUPS.items():
    if set(_keys) <= set(AIRPORT_POINT):  # origin, origin and hour: looked up at the airport's points
        _lookups, _values, _used = _history(_group, _keys, _AT)
        _airport_lookups += _lookups
        _airport_values.update(_values)
        _airport_history_used.append(_used)
    else:
        _lookups, _values, _used = _history(_group, _keys, f"points_{_group}")
        _values["history_known_at"] = _used
        _FAMILIES[_group] = _point_values(_group, (*_keys, "predicted_at"), _HISTORY_STARTS, _lookups, _values)
_airport_values["history_known_at"] = f"greatest({', '.join(_airport_history_used)})"
_FAMILIES["airport"] = _point_values(
    "airport", AIRPORT_POINT, (*_AIRPORT_TIMES, *_HISTORY_STARTS), _airport_lookups, _airport_values
)

# ---------------------------------------------------------------- the columns

_VALUES: dict[str, str] = {
    **{
        c: f"f.{c}"
        for c in (
            "flight_date",
            "carrier",
            "flight",
            "origin",
            "sched_dep_time",
            "tailnum",
            "dest",
            "sched_dep_utc",
            "predicted_at",
            "sched_dep_hour",
            "sched_dep_minute",
            "distance",
            "seats",
            "engines",
            "is_delayed",
            "is_cancelled",
            "is_diverted",
        )
    },
    "horizon_minutes": "$horizon",
    "month": "month(f.flight_date)",
    "weekday": "isodow(f.flight_date)",
    "days_to_holiday": "h.days_to_holiday",
    "plane_age": "year(f.flight_date) - f.plane_year",
}
for _name, (_, _, _columns) in _FAMILIES.items():
    _VALUES.update({c: f"{_name}.{c}" for c in _columns})
_VALUES["history_known_at"] = f"greatest({', '.join(f'{name}.history_known_at' for name in _FAMILIES)})"

if set(_VALUES) != set(COLUMNS):
    raise RuntimeError(f"features SQL and domain.features.COLUMNS disagree on {sorted(set(_VALUES) ^ set(COLUMNS))}")

_SELECT_LIST = ",\n    ".join(f"CAST({_VALUES[c]} AS {t}) AS {c}" for c, t in COLUMNS.items())
_CTES = ",\n".join([_FLIGHTS, _HOLIDAYS, _WEATHER, *_EVENTS, *(c for ctes, _, _ in _FAMILIES.values() for c in ctes)])
_JOINS_SQL = "\n".join(
    ["LEFT JOIN day_holiday h ON h.flight_date = f.flight_date", *(join for _, join, _ in _FAMILIES.values())]
)
FEATURES_SQL = f"""
WITH {_CTES}
SELECT {_SELECT_LIST}
FROM targets f
{_JOINS_SQL}
"""
