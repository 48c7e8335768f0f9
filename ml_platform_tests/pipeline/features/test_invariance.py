"""A day's features do not depend on when they were computed, nor on the range they were built in.

The days around the 2013-02-08/09 blizzard (half the schedule cancelled) arrive one
at a time after a January of history; each day's features are built when it is the
newest day in the warehouse. Rebuilding them later, in one range, after more days
arrived, must give every value again.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from ml_platform.pipeline.features import build as build_module
from ml_platform.pipeline.features import build_flight_features
from ml_platform.pipeline.warehouse.common import runs_of_days

from .conftest import days, features

JAN1, FEB4, FEB5, FEB12, FEB20 = (
    dt.date(2013, 1, 1),
    dt.date(2013, 2, 4),
    dt.date(2013, 2, 5),
    dt.date(2013, 2, 12),
    dt.date(2013, 2, 20),
)


def test_features_of_a_day_are_the_same_when_built_day_by_day_as_days_arrive_or_later_in_one_range(growing):
    growing.arrive(JAN1, FEB4)  # history: January and the first days of February
    as_they_arrived = []
    for day in days(FEB5, FEB12):
        growing.arrive(day)  # the day is now the newest in the warehouse
        result = build_flight_features(growing.conn, day, day)
        assert (
            result.rows
            == growing.conn.execute("SELECT count(*) FROM core.fct_flights WHERE flight_date = ?", [day]).fetchone()[0]
        )
        as_they_arrived += features(growing.conn, day, day)
    assert len(as_they_arrived) == 6_994  # the source rows of 2013-02-05..12 (472 of the 930 on 02-08 cancelled)

    # The same days in one range while they are the newest days: identical.
    build_flight_features(growing.conn, FEB5, FEB12)
    assert features(growing.conn, FEB5, FEB12) == as_they_arrived

    # A week later, with the outcomes of the following days in the warehouse: identical.
    growing.arrive(dt.date(2013, 2, 13), FEB20)
    build_flight_features(growing.conn, FEB5, FEB20)
    assert features(growing.conn, FEB5, FEB12) == as_they_arrived

    # And in a session with another time zone (windows are absolute hours, not calendar days).
    growing.conn.execute("SET TimeZone = 'America/Los_Angeles'")
    build_flight_features(growing.conn, FEB5, FEB12)
    growing.conn.execute("SET TimeZone = 'UTC'")
    assert features(growing.conn, FEB5, FEB12) == as_they_arrived

    # Sanity: the blizzard is visible in the features built on arrival.
    blizzard = growing.conn.execute(
        "SELECT count(*) FILTER (WHERE is_cancelled), max(origin_cancelled_2h), min(visib) "
        "FROM features.flight_features WHERE flight_date = '2013-02-08'"
    ).fetchone()
    assert blizzard == (472, 59, 0.5)  # 472 cancelled; up to 59 cancelled at one origin in 2 h; 0.5 mi visibility


def test_rebuilding_a_range_is_idempotent_and_other_days_are_untouched(year_features):
    conn = year_features.conn
    before_week = features(conn, FEB5, FEB12)
    neighbours = features(conn, FEB4, FEB4) + features(conn, dt.date(2013, 2, 13), dt.date(2013, 2, 13))
    result = build_flight_features(conn, FEB5, FEB12)
    assert features(conn, FEB5, FEB12) == before_week
    assert features(conn, FEB4, FEB4) + features(conn, dt.date(2013, 2, 13), dt.date(2013, 2, 13)) == neighbours
    assert list(result.days) == days(FEB5, FEB12) and result.rows == len(before_week)


def test_a_range_built_in_several_statements_equals_one_statement(year_features, monkeypatch):
    conn = year_features.conn
    one_statement = features(conn, FEB5, FEB20)  # the year was built in one statement
    monkeypatch.setattr(build_module, "MAX_FLIGHTS_PER_STATEMENT", 2_000)  # about two days each
    build_flight_features(conn, FEB5, FEB20)
    assert features(conn, FEB5, FEB20) == one_statement


def test_runs_of_days_cover_the_range_in_runs_of_at_most_the_limit():
    d = [dt.date(2013, 3, n) for n in range(1, 7)]
    per_day = {d[0]: 900, d[1]: 900, d[2]: 2_500, d[3]: 100, d[5]: 950}  # d[4]: no flights
    assert runs_of_days(per_day, d[0], d[5], 2_000) == [
        (d[0], d[1]),
        (d[2], d[2]),
        (d[3], d[5]),  # a day above the limit is a run alone
    ]
    assert runs_of_days(per_day, d[0], d[5], 10_000) == [(d[0], d[5])]
    assert runs_of_days({}, d[0], d[0], 1) == [(d[0], d[0])]


def test_a_failed_build_leaves_the_previous_rows(growing, monkeypatch):
    growing.arrive(JAN1, dt.date(2013, 1, 3))
    build_flight_features(growing.conn, JAN1, dt.date(2013, 1, 3))
    before = features(growing.conn, JAN1, dt.date(2013, 1, 3))
    monkeypatch.setattr(build_module, "FEATURES_SQL", build_module.FEATURES_SQL + " WHERE no_such_column")
    with pytest.raises(duckdb.BinderException, match="no_such_column"):
        build_flight_features(growing.conn, JAN1, dt.date(2013, 1, 3))
    assert features(growing.conn, JAN1, dt.date(2013, 1, 3)) == before
