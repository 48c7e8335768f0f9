"""The drift thresholds, checked against the real 2013 year week by week: the blizzard week of
2013-02-08/09 reaches ERROR with the year's highest score, and most weeks stay below ERROR."""

from __future__ import annotations

from ml_platform.devdata.drift_calibration import BLIZZARD_WEEK, markdown_table, weekly_scores
from ml_platform.pipeline import features as ft


def test_the_blizzard_week_is_error_and_ordinary_weeks_are_not(year_features):
    frame = year_features.conn.execute(f"SELECT * FROM {ft.TABLE}").pl()
    scores = weekly_scores(frame)
    print("\n" + markdown_table(scores))
    by_week = {(s.year, s.week): s for s in scores}
    blizzard = by_week[BLIZZARD_WEEK]
    assert blizzard.level == "error"
    assert blizzard.score == max(s.score for s in scores)  # the year's highest
    errors = [s for s in scores if s.level == "error"]
    assert len(errors) <= 0.1 * len(scores)  # most ordinary weeks stay below ERROR
    assert len(scores) == 49  # ISO weeks 4..52 of 2013, each with two weeks of history before it
