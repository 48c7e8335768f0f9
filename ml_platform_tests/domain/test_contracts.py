"""Contracts judge frames row by row: a verdict counts failing rows (not cells), names each
broken rule with its count, and keeps a few failing rows a person can read."""

from __future__ import annotations

import datetime as dt

import polars as pl

from ml_platform.domain.contracts import StagingWeather, check_contract, combine

UTC = dt.UTC


def weather(**overrides) -> pl.DataFrame:
    hours = [dt.datetime(2013, 1, 1, h, tzinfo=UTC) for h in range(4)]
    base = {
        "origin": ["EWR", "JFK", "LGA", "EWR"],
        "observed_at_utc": hours,
        "known_at_utc": [h + dt.timedelta(minutes=51) for h in hours],
        "temp": [39.0, 39.9, 39.0, 37.9],
        "humid": [59.4, 61.6, 64.4, 62.2],
        "wind_speed": [10.4, 8.1, 11.5, 12.7],
        "wind_gust": [0.0, 0.0, 0.0, 0.0],
        "pressure": [1012.0, 1012.3, 1012.5, 1012.2],
        "visib": [10.0, 10.0, 10.0, 10.0],
        "is_imputed": [False, False, False, True],
    }
    base.update(overrides)
    return pl.DataFrame(base).with_columns(
        pl.col("observed_at_utc", "known_at_utc").dt.cast_time_unit("us").dt.convert_time_zone("UTC")
    )


def test_a_clean_frame_passes():
    verdict = check_contract(StagingWeather, weather())
    assert verdict.passed and verdict.rows == 4 and verdict.failing_rows == 0


def test_failing_rows_are_counted_once_with_every_rule_named():
    frame = weather(
        wind_speed=[10.4, 1048.0, 11.5, 12.7],  # the real 2013 sensor glitch
        humid=[59.4, 161.6, 64.4, 62.2],  # same row breaks a second rule
        origin=["EWR", "JFK", "BOS", "EWR"],
    )
    verdict = check_contract(StagingWeather, frame)
    assert not verdict.passed
    assert verdict.failing_rows == 2  # rows 2 and 3, not three cells
    assert verdict.failures_by_rule == {
        "humid: less_than_or_equal_to(100)": 1,
        "origin: isin(['EWR', 'JFK', 'LGA'])": 1,
        "wind_speed: less_than_or_equal_to(200)": 1,
    }
    assert [row["origin"] for row in verdict.sample] == ["JFK", "BOS"]
    assert verdict.sample[0]["observed_at_utc"].startswith("2013-01-01T01:00:00")  # JSON-ready


def test_table_level_rules_fail_the_offending_rows():
    hours = [dt.datetime(2013, 1, 1, 5, tzinfo=UTC)] * 4
    known = [h + dt.timedelta(minutes=51) for h in hours]
    frame = weather(observed_at_utc=hours, known_at_utc=known, origin=["EWR"] * 4)
    verdict = check_contract(StagingWeather, frame)
    assert verdict.failures_by_rule == {"StagingWeather: two reports for one airport and hour": 4}
    assert verdict.failing_rows == 4


def test_a_table_checked_in_parts_gets_the_verdict_of_the_whole():
    frame = weather(
        wind_speed=[10.4, 1048.0, 11.5, 12.7],
        humid=[59.4, 161.6, 64.4, 62.2],
        origin=["EWR", "JFK", "BOS", "EWR"],
    )
    whole = check_contract(StagingWeather, frame)
    parts = combine(check_contract(StagingWeather, part) for part in (frame[:1], frame[1:3], frame[3:]))
    assert parts == whole
    assert combine([]) == check_contract(StagingWeather, frame.head(0))
