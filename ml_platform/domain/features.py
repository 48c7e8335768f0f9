"""The columns of ``features.flight_features``: which are keys, which a model may use, which never.

One row per flight of ``core.fct_flights``, as it would have looked ``horizon``
minutes before its scheduled departure (``predicted_at``). A model may use
``NUMERIC_FEATURES`` and ``CATEGORICAL_FEATURES`` only; ``LABEL`` is what it
predicts; ``KNOWN_AT_COLUMNS`` record the latest source time each family of
features used, so that "nothing from the future" can be checked on every row.
"""

from __future__ import annotations

from ml_platform.domain.flights import FLIGHT_KEY, LABEL

TABLE = "features.flight_features"

# A prediction is made this many minutes before the scheduled departure (a setting, up to a day).
DEFAULT_HORIZON_MINUTES = 60
MAX_HORIZON_MINUTES = 24 * 60

# The flight's natural key, as in core.fct_flights.
KEY_COLUMNS = FLIGHT_KEY

CATEGORICAL_FEATURES = ("carrier", "origin", "dest")

CALENDAR_FEATURES = ("month", "weekday", "sched_dep_hour", "sched_dep_minute", "days_to_holiday", "distance")
PLANE_FEATURES = ("plane_age", "seats", "engines")
WEATHER_MEASURES = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib")
WEATHER_TRENDS = ("temp_change_3h", "pressure_change_3h", "wind_speed_change_3h", "precip_sum_3h")
WEATHER_FEATURES = (*WEATHER_MEASURES, "weather_age_minutes", *WEATHER_TRENDS)
AIRPORT_FEATURES = (
    "origin_sched_flights_2h",
    "origin_departed_2h",
    "origin_mean_dep_delay_2h",
    "origin_cancelled_2h",
)

# Trailing delay history: {prefix: the columns that define the group}.
HISTORY_GROUPS = {
    "carrier": ("carrier",),
    "origin": ("origin",),
    "route": ("origin", "dest"),
    "tailnum": ("tailnum",),
    "origin_hour": ("origin", "sched_dep_hour"),
}
HISTORY_WINDOW_DAYS = (7, 28)
# The days before a flight's own day its features read: the longest window plus overnight arrivals.
HISTORY_DAYS = max(HISTORY_WINDOW_DAYS) + 1
HISTORY_FEATURES = tuple(
    f"{group}_{measure}_{days}d"
    for group in HISTORY_GROUPS
    for days in HISTORY_WINDOW_DAYS
    for measure in ("delay_rate", "n")
)

NUMERIC_FEATURES = (*CALENDAR_FEATURES, *PLANE_FEATURES, *WEATHER_FEATURES, *AIRPORT_FEATURES, *HISTORY_FEATURES)
KNOWN_AT_COLUMNS = ("weather_known_at", "airport_state_known_at", "history_known_at")
FLAG_COLUMNS = ("is_cancelled", "is_diverted")

# What happened to the flight itself after it left: never a feature.
FORBIDDEN_COLUMNS = (
    "dep_time",
    "dep_delay",
    "arr_time",
    "arr_delay",
    "air_time",
    "actual_dep_utc",
    "actual_dep_local",
    "actual_arr_utc",
    "actual_arr_local",
)
FORBIDDEN_PREFIXES = ("arr_", "actual_")

_INTEGER = (
    "flight",
    "sched_dep_time",
    "horizon_minutes",
    "month",
    "weekday",
    "sched_dep_hour",
    "sched_dep_minute",
    "days_to_holiday",
    "distance",
    "plane_age",
    "seats",
    "engines",
    "weather_age_minutes",
    "origin_sched_flights_2h",
    "origin_departed_2h",
    "origin_cancelled_2h",
    *(c for c in HISTORY_FEATURES if "_n_" in c),
)


def _column_type(column: str) -> str:
    if column == "flight_date":
        return "DATE"
    if column in ("carrier", "origin", "tailnum", "dest"):
        return "VARCHAR"
    if column in ("sched_dep_utc", "predicted_at", *KNOWN_AT_COLUMNS):
        return "TIMESTAMP WITH TIME ZONE"
    if column in (LABEL, *FLAG_COLUMNS):
        return "BOOLEAN"
    return "INTEGER" if column in _INTEGER else "DOUBLE"


# Every column of the table, in order, with its DuckDB type.
COLUMN_ORDER = (
    *KEY_COLUMNS,
    "tailnum",
    "dest",
    "sched_dep_utc",
    "horizon_minutes",
    "predicted_at",
    *NUMERIC_FEATURES,
    *KNOWN_AT_COLUMNS,
    LABEL,
    *FLAG_COLUMNS,
)
COLUMNS: dict[str, str] = {column: _column_type(column) for column in COLUMN_ORDER}
