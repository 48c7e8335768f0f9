"""Flight events: what the ``flight_events`` topic carries, derived from a real day's flights.

A flight produces at most two events, each at the moment its content became known:

* ``cancelled`` at the scheduled departure, for a flight that never left (no ``dep_time``);
* ``departed`` at the actual departure, with ``dep_time`` and ``dep_delay``;
* ``arrived`` at the actual arrival, with ``arr_time``, ``arr_delay`` (the label's source)
  and ``air_time``. A diverted flight has ``arr_time`` but no ``arr_delay``.

Every event carries the flight's schedule and everything known about the flight at its
event time, so the latest event of a flight is its whole raw row: a day's events give back
exactly the rows of the day's landing file (``raw_flights_from_events``).

Times. The source's ``hhmm`` values are wall-clock times of the airport concerned: the
origin (always New York here) for departures, the destination for arrivals; ``2400`` is
midnight at the end of the day. Event times are UTC instants, placed like the warehouse
places flights (``ml_platform/pipeline/warehouse/flights.py``):

* scheduled departure = ``flight_date`` + ``sched_dep_time`` in the origin's zone;
* actual departure = scheduled departure + ``dep_delay`` minutes;
* scheduled arrival = the first moment at or after the scheduled departure at which the
  destination's clock shows ``sched_arr_time`` (right for overnight flights and Hawaii);
* actual arrival = scheduled arrival + ``arr_delay`` minutes; for a diverted flight (no
  delay) the first moment at or after the actual departure at which the destination's clock
  shows ``arr_time``. A destination without a known zone falls back to departure + air time.

Zones come from the airports reference table, plus the four Caribbean airports it lacks
(the same ones as ``ml_platform/pipeline/warehouse/airports_supplement.csv``).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from dataclasses import dataclass, fields
from functools import cache
from zoneinfo import ZoneInfo

import polars as pl

from ml_platform.devdata.reference_data import flights_csv_for_day, read_reference_table
from ml_platform.domain import calendar
from ml_platform.domain.flights import SOURCE_COLUMNS

TOPIC = "flight_events"
PARTITIONS = 3
KINDS = ("cancelled", "departed", "arrived")  # also the order of a flight's states
UTC = dt.UTC
NEW_YORK = ZoneInfo(calendar.NEW_YORK)
# Airports the reference table has no row for (see airports_supplement.csv in the warehouse).
SUPPLEMENT_ZONES = {
    "BQN": "America/Puerto_Rico",
    "PSE": "America/Puerto_Rico",
    "SJU": "America/Puerto_Rico",
    "STT": "America/St_Thomas",
}


@dataclass(frozen=True, slots=True)
class FlightEvent:
    """One thing that happened to one flight, with the flight as known at ``event_time``."""

    event_id: str  # sha256 of flight_key|kind: a re-sent event has the same id
    kind: str  # one of KINDS
    event_time: dt.datetime  # UTC
    flight_key: str  # flight_date|carrier|flight|origin|sched_dep_time: the Kafka message key
    flight_date: dt.date  # the New York day of the scheduled departure
    carrier: str
    flight: int
    tailnum: str | None
    origin: str
    dest: str
    sched_dep_time: int
    sched_arr_time: int
    distance: int
    hour: int
    minute: int
    time_hour: str  # the scheduled hour as the source writes it (UTC ISO text)
    dep_time: int | None = None
    dep_delay: int | None = None
    arr_time: int | None = None
    arr_delay: int | None = None
    air_time: int | None = None

    def to_json(self) -> bytes:
        """The message value: a JSON object of every field, times as ISO-8601 text."""
        record = {f: getattr(self, f) for f in FIELD_NAMES}
        record["event_time"] = self.event_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        record["flight_date"] = self.flight_date.isoformat()
        return json.dumps(record, separators=(",", ":")).encode()


FIELD_NAMES = tuple(f.name for f in fields(FlightEvent))
_TEXT = {
    "event_id",
    "kind",
    "event_time",
    "flight_key",
    "flight_date",
    "carrier",
    "tailnum",
    "origin",
    "dest",
    "time_hour",
}
_ALWAYS_NULLABLE = {"tailnum"}
# Per kind: fields that must be set, and fields that must be null (the rest of the outcome fields may be null).
_OUTCOME_RULES = {
    "cancelled": ((), ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time")),
    "departed": (("dep_time", "dep_delay"), ("arr_time", "arr_delay", "air_time")),
    "arrived": (("dep_time", "dep_delay", "arr_time"), ()),
}
_OUTCOME_FIELDS = {"dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"}

# The lake's (and polars') form of an event: one column per field.
EVENT_SCHEMA = {
    name: (
        pl.Datetime("us", "UTC")
        if name == "event_time"
        else pl.Date
        if name == "flight_date"
        else pl.String
        if name in _TEXT
        else pl.Int32
    )
    for name in FIELD_NAMES
}


def flight_key(flight_date: dt.date, carrier: str, flight: int, origin: str, sched_dep_time: int) -> str:
    """The flight's natural key as one string: the Kafka key, so a flight's events share a partition."""
    return f"{flight_date.isoformat()}|{carrier}|{flight}|{origin}|{sched_dep_time}"


def event_id(key: str, kind: str) -> str:
    return hashlib.sha256(f"{key}|{kind}".encode()).hexdigest()[:32]


@cache
def airport_zones() -> dict[str, ZoneInfo]:
    """Each airport's time zone, from the airports reference table and its four missing airports."""
    airports = read_reference_table("airports").drop_nulls("tzone")
    names = dict(zip(airports["faa"], airports["tzone"], strict=True)) | SUPPLEMENT_ZONES
    return {faa: ZoneInfo(zone) for faa, zone in names.items()}


def _minutes(hhmm: int) -> int:
    return hhmm // 100 * 60 + hhmm % 100


def _at_local(day: dt.date, hhmm: int, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant of a wall-clock hhmm on ``day`` in ``zone`` (2400 = the next midnight)."""
    naive = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=_minutes(hhmm))
    return naive.replace(tzinfo=zone).astimezone(UTC)


def _first_at_or_after(instant: dt.datetime, hhmm: int, zone: ZoneInfo) -> dt.datetime:
    """The first moment at or after ``instant`` at which the clock of ``zone`` shows ``hhmm``."""
    local = instant.astimezone(zone).replace(tzinfo=None)
    candidate = dt.datetime.combine(local.date(), dt.time()) + dt.timedelta(minutes=_minutes(hhmm))
    if candidate < local:
        candidate += dt.timedelta(days=1)
    return candidate.replace(tzinfo=zone).astimezone(UTC)


def _int(text: str) -> int | None:
    return None if text in ("", "NA") else int(text)


def events_from_flights_csv(data: bytes) -> list[FlightEvent]:
    """The events of every flight in a flights CSV (a landing file's bytes), sorted by event time."""
    zones = airport_zones()
    events = []
    for row in csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")):
        day = dt.date(int(row["year"]), int(row["month"]), int(row["day"]))
        schedule = {
            "flight_date": day,
            "carrier": row["carrier"],
            "flight": int(row["flight"]),
            "tailnum": None if row["tailnum"] in ("", "NA") else row["tailnum"],
            "origin": row["origin"],
            "dest": row["dest"],
            "sched_dep_time": int(row["sched_dep_time"]),
            "sched_arr_time": int(row["sched_arr_time"]),
            "distance": int(row["distance"]),
            "hour": int(row["hour"]),
            "minute": int(row["minute"]),
            "time_hour": row["time_hour"],
        }
        key = flight_key(day, schedule["carrier"], schedule["flight"], schedule["origin"], schedule["sched_dep_time"])
        sched_dep = _at_local(day, schedule["sched_dep_time"], zones.get(schedule["origin"], NEW_YORK))

        def event(kind: str, at: dt.datetime, **outcome) -> FlightEvent:
            return FlightEvent(event_id(key, kind), kind, at, key, **schedule, **outcome)  # noqa: B023

        dep_time, dep_delay = _int(row["dep_time"]), _int(row["dep_delay"])
        if dep_time is None:
            events.append(event("cancelled", sched_dep))
            continue
        departed_at = sched_dep + dt.timedelta(minutes=dep_delay or 0)
        events.append(event("departed", departed_at, dep_time=dep_time, dep_delay=dep_delay))
        arr_time, arr_delay, air_time = _int(row["arr_time"]), _int(row["arr_delay"]), _int(row["air_time"])
        if arr_time is None:
            continue  # left, never reported arriving: the departure is all there is
        dest_zone = zones.get(schedule["dest"])
        if dest_zone is None:
            arrived_at = departed_at + dt.timedelta(minutes=air_time or 0)
        elif arr_delay is not None:
            sched_arr = _first_at_or_after(sched_dep, schedule["sched_arr_time"], dest_zone)
            arrived_at = sched_arr + dt.timedelta(minutes=arr_delay)
        else:
            arrived_at = _first_at_or_after(departed_at, arr_time, dest_zone)
        events.append(
            event(
                "arrived",
                arrived_at,
                dep_time=dep_time,
                dep_delay=dep_delay,
                arr_time=arr_time,
                arr_delay=arr_delay,
                air_time=air_time,
            )
        )
    return sorted(events, key=lambda e: (e.event_time, e.flight_key, KINDS.index(e.kind)))


def events_for_day(day: dt.date) -> list[FlightEvent]:
    """The events of the flights scheduled to leave on ``day`` (New York), sorted by event time.

    Late departures and overnight arrivals of the day's flights fall after the day's end.
    """
    data = flights_csv_for_day(day)
    if data is None:
        raise ValueError(f"no reference flights on {day} (the data covers 2013)")
    return events_from_flights_csv(data)


def events_frame(events: list[FlightEvent]) -> pl.DataFrame:
    """Events as a frame with one column per field (``EVENT_SCHEMA``)."""
    rows = [tuple(getattr(e, f) for f in FIELD_NAMES) for e in events]
    return pl.DataFrame(rows, schema=EVENT_SCHEMA, orient="row")


def raw_flights_from_events(frame: pl.DataFrame) -> pl.DataFrame:
    """One raw flights row per flight: its latest event, in the landing file's columns, all text.

    Text and nulls are those ``parse_flights_csv`` gives for the flight's line, so stream and
    file rows are interchangeable (lineage columns aside). A re-sent event changes nothing.
    Rows are ordered by flight_date, sched_dep_time, carrier, flight, origin.
    """
    state = pl.col("kind").replace_strict({k: i for i, k in enumerate(KINDS)}, return_dtype=pl.Int8)
    latest = frame.sort("event_time", state, "event_id").unique("flight_key", keep="last")
    text = {c: pl.col(c).cast(pl.String) for c in SOURCE_COLUMNS if c not in ("year", "month", "day")}
    return latest.sort("flight_date", "sched_dep_time", "carrier", "flight", "origin").select(
        pl.col("flight_date").dt.year().cast(pl.String).alias("year"),
        pl.col("flight_date").dt.month().cast(pl.String).alias("month"),
        pl.col("flight_date").dt.day().cast(pl.String).alias("day"),
        *(text[c].alias(c) for c in SOURCE_COLUMNS if c in text),
    )


def parse_event(data: bytes) -> FlightEvent | str:
    """The event a message value holds, or a readable reason why it is not one.

    Rejected: bytes that are not UTF-8 JSON, anything but an object, an unknown ``kind``, a
    missing field, a value of the wrong type (integers must be JSON integers, text JSON
    strings), an unparsable time or date, and outcome fields that contradict the kind
    (a ``departed`` event without ``dep_time``, a ``cancelled`` one with it). Fields this
    version does not know are ignored.
    """
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        return f"not JSON: {e}"
    if not isinstance(record, dict):
        return f"not a JSON object but {type(record).__name__}"
    kind = record.get("kind")
    if kind not in KINDS:
        return "missing field: kind" if "kind" not in record else f"unknown kind {kind!r} (expected one of {KINDS})"
    missing = [f for f in FIELD_NAMES if f not in record]
    if missing:
        return f"missing field(s): {', '.join(missing)}"
    required, forbidden = _OUTCOME_RULES[kind]
    values = {}
    for name in FIELD_NAMES:
        value = record[name]
        if value is None:
            if name in required or (name not in _ALWAYS_NULLABLE and name not in _OUTCOME_FIELDS):
                return f"field {name}: must not be null in a {kind} event"
        elif name in forbidden:
            return f"field {name}: must be null in a {kind} event, got {value!r}"
        elif name in _TEXT and not isinstance(value, str):
            return f"field {name}: expected a string, got {type(value).__name__} {value!r}"
        elif name not in _TEXT and (not isinstance(value, int) or isinstance(value, bool)):
            return f"field {name}: expected an integer, got {type(value).__name__} {value!r}"
        values[name] = value
    try:
        at = dt.datetime.fromisoformat(values["event_time"])
    except ValueError:
        return f"field event_time: not an ISO-8601 time: {values['event_time']!r}"
    if at.tzinfo is None:
        return f"field event_time: no time zone in {values['event_time']!r} (expected UTC, e.g. ...Z)"
    try:
        values["flight_date"] = dt.date.fromisoformat(values["flight_date"])
    except ValueError:
        return f"field flight_date: not an ISO date: {values['flight_date']!r}"
    values["event_time"] = at.astimezone(UTC)
    return FlightEvent(**values)
