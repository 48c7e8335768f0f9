"""Set-based means fast: the whole year in one range, and one day whatever the history behind it."""

from __future__ import annotations

import datetime as dt

from ml_platform.lib.features import build_flight_features

YEAR_TARGET_SECONDS = 30  # on 2 cores; measured 6-11 s


def test_the_whole_year_builds_in_one_range_well_under_the_target(year_features):
    build = year_features.build
    print(f"\nwhole year, one range: {build.rows:,} rows in {build.seconds:.2f} s")
    assert build.rows == 336_776
    assert build.seconds < YEAR_TARGET_SECONDS


def best_of(conn, day: dt.date, runs: int = 3) -> float:
    return min(build_flight_features(conn, day, day).seconds for _ in range(runs))


def test_one_day_costs_the_same_after_a_month_or_a_year_of_history(year_features, growing):
    growing.arrive(dt.date(2013, 1, 1), dt.date(2013, 1, 31))
    after_a_month = best_of(growing.conn, dt.date(2013, 1, 31))
    after_a_year = best_of(year_features.conn, dt.date(2013, 12, 31))
    print(f"\none day: after a month of history {after_a_month:.3f} s, after a year {after_a_year:.3f} s")
    assert after_a_year < max(2 * after_a_month, after_a_month + 0.3)
    assert after_a_year < 2.0
