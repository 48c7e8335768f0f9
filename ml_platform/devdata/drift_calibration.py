"""Calibrating the drift thresholds on the real 2013 year: one score per week of flights.

Each ISO week is compared with what a model retrained every week would have been
trained on: every labelled flight before that week (an expanding window). The
weekly scores decide DRIFT_WARN and DRIFT_ERROR in ``ml_platform.pipeline.drift``.

    python -m ml_platform.devdata.drift_calibration   # prints the table written to docs/drift.md
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass

import polars as pl

from ml_platform.pipeline import features as ft
from ml_platform.pipeline.drift import DRIFT_ERROR, DRIFT_FEATURES, DRIFT_WARN, drift_report, severity

MIN_REFERENCE_DAYS = 14
BLIZZARD_WEEK = (2013, 6)  # 2013-02-04 .. 02-10: the 02-08/09 blizzard


@dataclass(frozen=True)
class WeekScore:
    year: int
    week: int
    first_day: dt.date
    score: float
    level: str
    top: list[tuple[str, float]]


def weekly_scores(frame: pl.DataFrame) -> list[WeekScore]:
    """Score every ISO week with at least two weeks of labelled history before it."""
    frame = frame.with_columns(
        pl.col("flight_date").dt.iso_year().alias("_iso_year"),
        pl.col("flight_date").dt.week().alias("_iso_week"),
    )
    start = frame["flight_date"].min()
    scores = []
    for (year, week), rows in sorted(frame.group_by("_iso_year", "_iso_week"), key=lambda g: g[0]):
        first_day = rows["flight_date"].min()
        if (first_day - start).days < MIN_REFERENCE_DAYS or rows["flight_date"].n_unique() < 7:
            continue
        reference = frame.filter((pl.col("flight_date") < first_day) & pl.col(ft.LABEL).is_not_null())
        report = drift_report(reference, rows, DRIFT_FEATURES)
        level = severity(report.score, DRIFT_WARN, DRIFT_ERROR)
        scores.append(WeekScore(year, week, first_day, report.score, level, report.top))
    return scores


def markdown_table(scores: list[WeekScore]) -> str:
    lines = ["| ISO week | from | score | level | largest PSIs in the score |", "| --- | --- | ---: | --- | --- |"]
    for s in scores:
        top = ", ".join(f"{name} {value:.2f}" for name, value in s.top)
        lines.append(f"| {s.year}-W{s.week:02d} | {s.first_day} | {s.score:.3f} | {s.level} | {top} |")
    return "\n".join(lines)


def main() -> int:
    """Build the real year's features in a temporary warehouse and print the weekly table."""
    import tempfile
    from pathlib import Path

    import duckdb

    from ml_platform.devdata.offline_year import build_year_warehouse

    with tempfile.TemporaryDirectory() as tmp:
        conn = duckdb.connect(str(Path(tmp) / "w.duckdb"))
        build_year_warehouse(conn, Path(tmp) / "lake")
        ft.build_flight_features(conn, dt.date(2013, 1, 1), dt.date(2013, 12, 31))
        frame = conn.execute(f"SELECT * FROM {ft.TABLE}").pl()
    print(markdown_table(weekly_scores(frame)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
