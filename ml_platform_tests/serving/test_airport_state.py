"""The fast-moving airport state: the stream's departures make a pushed row fresher without breaking
point-in-time correctness, and what they make is exactly what the offline table computes.

The real-day test plays a live morning: the features of 2013-07-11 are built from a warehouse
that knows the schedule of the day but none of its departures, arrivals or cancellations, and
pushed; then every departure and cancellation of the day arrives through the stream consumer's
call (all of them before any flight is read: an event from after a flight's ``predicted_at``
must not count). The airport state read back must equal, flight by flight and to the bit, the
offline table built once the day's file had landed; every other column stays as pushed.
"""

from __future__ import annotations

import datetime as dt

import pytest

from ml_platform.domain.features import TABLE
from ml_platform.pipeline.features import build_flight_features
from ml_platform.serving.airport_state import (
    AIRPORT_STATE_COLUMNS,
    RETENTION_US,
    WINDOW_US,
    AirportEvents,
    AirportState,
    fresher,
)
from ml_platform.serving.codec import from_micros, to_micros
from ml_platform.serving.online_store import (
    ONLINE_COLUMNS,
    CancellationEvent,
    DepartureEvent,
    FlightKey,
    FlightSelection,
    push_flight_features,
)

from .conftest import SCORED_DAY, connect

P = dt.datetime(2013, 7, 11, 16, 0, tzinfo=dt.UTC)
P_US = to_micros(P)


def entity(*departures, cancellations=(), complete_from=P_US - WINDOW_US) -> AirportEvents:
    deps = [(t, delay, f"f{i}") for i, (t, delay) in enumerate(departures)]
    cans = [(t, f"c{i}") for i, t in enumerate(cancellations)]
    return AirportEvents("EWR").merged(deps, cans, complete_from_us=complete_from)


@pytest.mark.parametrize(
    ("departures", "cancellations", "expected"),
    [
        ([], [], AirportState(0, None, 0, None)),
        # (P - 2 h, P]: the start is excluded, predicted_at itself included, a microsecond later not.
        ([(P_US - WINDOW_US, 10)], [], AirportState(0, None, 0, None)),
        ([(P_US - WINDOW_US + 1, 10)], [], AirportState(1, 10.0, 0, from_micros(P_US - WINDOW_US + 1))),
        ([(P_US, 7), (P_US - 60_000_000, 0)], [], AirportState(2, 3.5, 0, P)),
        ([(P_US + 1, 99), (P_US - 1, 1)], [], AirportState(1, 1.0, 0, from_micros(P_US - 1))),
        ([(P_US - 10, 1), (P_US - 20, 1), (P_US - 30, 2)], [], AirportState(3, 4 / 3, 0, from_micros(P_US - 10))),
        ([(P_US - 100, 5)], [P_US - 50, P_US + 50], AirportState(1, 5.0, 1, from_micros(P_US - 50))),
        ([], [P_US - WINDOW_US, P_US], AirportState(0, None, 1, P)),
    ],
)
def test_the_state_counts_only_events_known_in_the_window(departures, cancellations, expected):
    assert entity(*departures, cancellations=cancellations).state_at(P) == expected


def test_an_entity_vouches_only_for_windows_a_push_covered():
    assert entity((P_US - 10, 1), complete_from=None).state_at(P) is None  # only the stream wrote it
    assert entity((P_US - 10, 1), complete_from=P_US - WINDOW_US + 1).state_at(P) is None  # starts inside the window
    assert entity((P_US - 10, 1), complete_from=P_US - WINDOW_US).state_at(P) is not None


def test_replayed_events_replace_themselves_and_old_ones_are_dropped():
    once = AirportEvents("EWR").merged([(P_US, 5, "a")], complete_from_us=P_US - WINDOW_US)
    twice = once.merged([(P_US, 5, "a")]).merged([(P_US, 5, "a")])
    assert twice == once and len(twice.departures) == 1
    corrected = once.merged([(P_US + 60_000_000, 6, "a")])  # the same flight, a corrected time and delay
    assert corrected.departures == ((P_US + 60_000_000, 6, "a"),)
    later = once.merged([(P_US + RETENTION_US + 1, 1, "b")])
    assert [e[2] for e in later.departures] == ["b"]
    assert later.complete_from_us == P_US + 1  # it no longer vouches for the window it dropped
    assert AirportEvents.from_packable(later.to_packable()) == later


ROW = {
    "origin_departed_2h": 2,
    "origin_mean_dep_delay_2h": 3.0,
    "origin_cancelled_2h": 0,
    "airport_state_known_at": P - dt.timedelta(minutes=30),
    "temp": 80.1,
}


@pytest.mark.parametrize(
    ("state", "replaced"),
    [
        (None, False),  # no entity, or it does not vouch for the window
        (AirportState(1, 1.0, 0, P - dt.timedelta(minutes=40)), False),  # knows less than the row: never go back
        (AirportState(0, None, 0, None), False),
        (AirportState(2, 3.0, 0, P - dt.timedelta(minutes=30)), False),  # the same: the row as it is
        (AirportState(3, 4.0, 0, P - dt.timedelta(minutes=5)), True),  # newer departures
        (AirportState(2, 3.0, 1, P - dt.timedelta(minutes=30)), True),  # same newest time, one more event
    ],
)
def test_a_fresher_state_replaces_the_pushed_one_only_when_it_knows_more(state, replaced):
    row, was_replaced = fresher(ROW, state)
    assert was_replaced is replaced
    assert row == ({**ROW, **state.as_columns()} if replaced else ROW)
    assert row["temp"] == 80.1


def day_rows(conn) -> dict[tuple, dict]:
    rows = conn.execute(f"SELECT {', '.join(ONLINE_COLUMNS)} FROM {TABLE} WHERE flight_date = $d", {"d": SCORED_DAY})
    return {r[:5]: dict(zip(ONLINE_COLUMNS, r, strict=True)) for r in rows.fetchall()}


def _stale_warehouse(replayed, tmp_path):
    """The warehouse as it was before the day flew: its flights scheduled, nothing happened yet."""
    for table in ("core.fct_flights", "staging.weather"):
        replayed.conn.execute(f"COPY (SELECT * FROM {table}) TO '{tmp_path / table}.parquet' (FORMAT parquet)")
    conn = connect(tmp_path / "stale_warehouse")
    for table in ("core.fct_flights", "staging.weather"):
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {table.split('.')[0]}")
        conn.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{tmp_path / table}.parquet')")
    conn.execute(
        """UPDATE core.fct_flights SET dep_time = NULL, dep_delay = NULL, arr_time = NULL, arr_delay = NULL,
           air_time = NULL, actual_dep_local = NULL, actual_dep_utc = NULL, actual_arr_local = NULL,
           actual_arr_utc = NULL, is_delayed = NULL, is_cancelled = false, is_diverted = false
           WHERE flight_date = $d""",
        {"d": SCORED_DAY},
    )
    build_flight_features(conn, SCORED_DAY, SCORED_DAY)
    return conn


def test_the_stream_brings_a_pushed_day_to_what_the_offline_table_computes(online, replayed, tmp_path):
    stale = _stale_warehouse(replayed, tmp_path)
    pushed = push_flight_features(online, stale, FlightSelection.days(SCORED_DAY, SCORED_DAY))
    assert pushed.flights == 1006

    departures = [
        DepartureEvent(*r)
        for r in replayed.conn.execute(
            "SELECT flight_date, carrier, flight, origin, sched_dep_time, actual_dep_utc, dep_delay "
            "FROM core.fct_flights "
            "WHERE flight_date = $d AND actual_dep_utc IS NOT NULL ORDER BY actual_dep_utc",
            {"d": SCORED_DAY},
        ).fetchall()
    ]
    cancellations = [
        CancellationEvent(*r)
        for r in replayed.conn.execute(
            "SELECT flight_date, carrier, flight, origin, sched_dep_time, sched_dep_utc FROM core.fct_flights "
            "WHERE flight_date = $d AND is_cancelled ORDER BY sched_dep_utc",
            {"d": SCORED_DAY},
        ).fetchall()
    ]
    events = departures + cancellations
    assert len(departures) == 937 and len(cancellations) > 5  # the real day
    for start in range(0, len(events), 100):  # as a consumer delivers them, in batches
        known = online.record_events(events[start : start + 100])
        assert set(known) <= {"EWR", "JFK", "LGA"}
    online.record_events(departures[:50])  # a replayed batch changes nothing

    offline, before = day_rows(replayed.conn), day_rows(stale)  # once the day landed / before it flew
    lookups = online.read([FlightKey(*k) for k in offline])
    wrong = [
        (lk.key, c, lk.row[c], offline[tuple(lk.key)][c])
        for lk in lookups
        for c in AIRPORT_STATE_COLUMNS
        if lk.row[c] != offline[tuple(lk.key)][c]
    ]
    assert wrong == []
    # Nothing else moved, and nothing known after predicted_at was used.
    others = [c for c in ONLINE_COLUMNS if c not in AIRPORT_STATE_COLUMNS]
    assert [(lk.key, c) for lk in lookups for c in others if lk.row[c] != before[tuple(lk.key)][c]] == []
    assert all(
        lk.row["airport_state_known_at"] is None or lk.row["airport_state_known_at"] <= lk.row["predicted_at"]
        for lk in lookups
    )
    replaced = sum(lk.airport_state_online for lk in lookups)
    changed = sum(any(offline[k][c] != before[k][c] for c in AIRPORT_STATE_COLUMNS) for k in offline)
    assert replaced == changed > 800, (replaced, changed)
    stale.close()
