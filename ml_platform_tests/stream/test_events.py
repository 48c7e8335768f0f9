"""Flight events from the real 2013 data: what a day produces, when each event happens, and that a
day's events give back exactly the rows of its landing file. Also which messages are not events."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import polars as pl
import pytest

from ml_platform.devdata.reference_data import flights_csv_for_day
from ml_platform.domain.flights import SOURCE_COLUMNS
from ml_platform.pipeline.landing import LINEAGE_COLUMNS, parse_flights_csv
from ml_platform.stream.events import (
    FlightEvent,
    event_id,
    events_for_day,
    events_frame,
    parse_event,
    raw_flights_from_events,
)

DAY = dt.date(2013, 1, 8)


def _csv_rows(day: dt.date) -> list[dict]:
    return list(csv.DictReader(io.StringIO(flights_csv_for_day(day).decode())))


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_a_days_events_count_what_the_csv_says():
    """2013-01-08 has 899 flights: 4 never left (empty dep_time): 4 cancelled events; 895 left: 895
    departed events; all 895 report an arr_time: 895 arrived events."""
    rows = _csv_rows(DAY)
    events = events_for_day(DAY)
    kinds = {k: sum(e.kind == k for e in events) for k in ("cancelled", "departed", "arrived")}
    assert len(rows) == 899
    assert kinds == {
        "cancelled": sum(r["dep_time"] == "NA" for r in rows),
        "departed": sum(r["dep_time"] != "NA" for r in rows),
        "arrived": sum(r["arr_time"] != "NA" for r in rows),
    }
    assert kinds == {"cancelled": 4, "departed": 895, "arrived": 895}
    assert len({e.flight_key for e in events}) == 899
    assert len({e.event_id for e in events}) == len(events)
    assert [e.event_time for e in events] == sorted(e.event_time for e in events)


@pytest.mark.parametrize(
    "key, kind, expected_utc",
    [
        # US 1117 EWR-CLT: scheduled 05:00 EST, left 6 minutes early (04:54 EST)
        ("2013-01-08|US|1117|EWR|500", "departed", "2013-01-08 09:54"),
        # ... scheduled into Charlotte (EST) at 06:48, 23 minutes early: 06:25 EST
        ("2013-01-08|US|1117|EWR|500", "arrived", "2013-01-08 11:25"),
        # HA 51 JFK-HNL: left 09:01 EST; due 15:30 Hawaii time, 26 min early: 15:04 HST (UTC-10), the next UTC day
        ("2013-01-08|HA|51|JFK|900", "arrived", "2013-01-09 01:04"),
        # UA 1071 EWR-BQN (Puerto Rico, a supplement airport, UTC-4): due 01:26 AST the next day, 17 min early
        ("2013-01-08|UA|1071|EWR|2035", "arrived", "2013-01-09 05:09"),
        # EV 4638 EWR-CVG was diverted (arr_time 13:15, no arr_delay): arrives at 13:15 EST after leaving
        ("2013-01-08|EV|4638|EWR|908", "arrived", "2013-01-08 18:15"),
        # EV 6055 LGA-IAD never left: cancelled at its scheduled departure, 06:00 EST
        ("2013-01-08|EV|6055|LGA|600", "cancelled", "2013-01-08 11:00"),
    ],
)
def test_event_times_are_the_real_moments_in_utc(key, kind, expected_utc):
    found = {(e.flight_key, e.kind): e for e in events_for_day(DAY)}
    assert found[(key, kind)].event_time == _utc(expected_utc)


def test_every_arrival_comes_after_departure_plus_air_time():
    """Taxi time is never negative: the arrival rule (scheduled arrival at the destination's clock +
    delay) agrees with the airborne minutes for every flight of January."""
    for day in (dt.date(2013, 1, 1) + dt.timedelta(days=i) for i in range(31)):
        by_key: dict[str, dict[str, FlightEvent]] = {}
        for e in events_for_day(day):
            by_key.setdefault(e.flight_key, {})[e.kind] = e
        for flight in by_key.values():
            if "arrived" in flight and flight["arrived"].air_time is not None:
                gate_to_gate = flight["arrived"].event_time - flight["departed"].event_time
                taxi = gate_to_gate - dt.timedelta(minutes=flight["arrived"].air_time)
                assert dt.timedelta(0) <= taxi <= dt.timedelta(hours=4), flight["arrived"].flight_key


@pytest.mark.parametrize(
    "day",
    [DAY, dt.date(2013, 2, 8), dt.date(2013, 3, 10), dt.date(2013, 11, 3), dt.date(2013, 12, 31)],
    ids=["ordinary", "blizzard", "dst-start", "dst-end", "new-years-eve"],
)
def test_a_days_events_give_back_the_landing_files_rows(day):
    """The latest event of each flight is its raw row: same columns, same text, same nulls as the
    lake's parse of the CSV (lineage columns aside), even when events are re-sent."""
    name = f"flights_{day}.csv"
    from_file = parse_flights_csv(name, flights_csv_for_day(day)).drop(LINEAGE_COLUMNS)
    events = events_for_day(day)
    resent = events + events[::7]  # every 7th event twice: a producer retry
    from_stream = raw_flights_from_events(events_frame(resent))
    order = ["year", "month", "day", "sched_dep_time", "carrier", "flight", "origin"]
    assert from_stream.columns == list(SOURCE_COLUMNS) == from_file.columns
    assert from_stream.schema == from_file.schema
    assert from_stream.sort(order).equals(from_file.sort(order))


def test_a_json_message_round_trips_to_the_same_event():
    for event in events_for_day(DAY)[:50]:
        assert parse_event(event.to_json()) == event


def test_event_ids_are_deterministic():
    """A re-sent event is recognisable: its id is the hash of the flight key and kind."""
    first, again = events_for_day(DAY), events_for_day(DAY)
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert first[0].event_id == event_id(first[0].flight_key, first[0].kind)


def _message(**changes) -> bytes:
    record = json.loads(events_for_day(DAY)[0].to_json())  # a departed event
    for name, value in changes.items():
        if value is KeyError:
            del record[name]
        else:
            record[name] = value
    return json.dumps(record).encode()


@pytest.mark.parametrize(
    "value, reason",
    [
        (b"\x00\x01not json", "not JSON"),
        (b"{truncated", "not JSON"),
        (b"[1, 2]", "not a JSON object but list"),
        (_message(kind=KeyError), "missing field: kind"),
        (_message(kind="landed"), "unknown kind 'landed'"),
        (_message(dep_delay=KeyError), "missing field(s): dep_delay"),
        (_message(dep_delay="-6"), "field dep_delay: expected an integer, got str '-6'"),
        (_message(flight=True), "field flight: expected an integer, got bool True"),
        (_message(carrier=9), "field carrier: expected a string, got int 9"),
        (_message(dep_time=None), "field dep_time: must not be null in a departed event"),
        (_message(arr_time=1200), "field arr_time: must be null in a departed event"),
        (_message(kind="cancelled"), "field dep_time: must be null in a cancelled event"),
        (_message(event_time="yesterday"), "field event_time: not an ISO-8601 time"),
        (_message(event_time="2013-01-08T09:54:00"), "field event_time: no time zone"),
        (_message(flight_date="2013-13-08"), "field flight_date: not an ISO date"),
    ],
)
def test_a_message_that_is_not_an_event_says_why(value, reason):
    result = parse_event(value)
    assert isinstance(result, str)
    assert reason in result


def test_unknown_extra_fields_are_ignored():
    assert isinstance(parse_event(_message(gate="B22")), FlightEvent)


def test_the_frame_form_has_one_typed_column_per_field():
    frame = events_frame(events_for_day(DAY))
    assert frame.height == 1794
    assert frame.schema["event_time"] == pl.Datetime("us", "UTC")
    assert frame.filter(pl.col("kind") == "cancelled")["dep_time"].null_count() == 4
