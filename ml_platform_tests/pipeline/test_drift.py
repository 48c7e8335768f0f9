"""The population stability index: zero for the same population, large for a real shift,
missing values and unseen categories counted rather than ignored."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ml_platform.pipeline.drift import categorical_psi, drift_report, numeric_psi, severity

RNG = np.random.default_rng(13)


def test_the_same_population_scores_near_zero_and_a_shift_scores_high():
    reference = pl.Series("temp", RNG.normal(40, 10, 20_000))
    same = pl.Series("temp", RNG.normal(40, 10, 5_000))
    colder = pl.Series("temp", RNG.normal(25, 10, 5_000))  # a cold week
    assert numeric_psi(reference, same) < 0.02
    assert numeric_psi(reference, colder) > 0.5


def test_missing_values_are_a_bin_of_their_own():
    reference = pl.Series("wind_gust", [0.0] * 900 + [None] * 100, dtype=pl.Float64)
    more_missing = pl.Series("wind_gust", [0.0] * 500 + [None] * 500, dtype=pl.Float64)
    assert numeric_psi(reference, reference) == pytest.approx(0.0)
    assert numeric_psi(reference, more_missing) > 0.5


def test_categories_unseen_in_the_reference_count():
    reference = pl.Series("carrier", ["UA"] * 50 + ["B6"] * 50)
    recent = pl.Series("carrier", ["UA"] * 50 + ["B6"] * 40 + ["ZZ"] * 10)
    assert categorical_psi(reference, reference) == pytest.approx(0.0)
    assert categorical_psi(reference, recent) > 0.05


def test_the_score_is_the_mean_psi_of_the_scored_features_only():
    n = 4_000
    reference = pl.DataFrame({"a": RNG.normal(0, 1, n), "b": RNG.normal(0, 1, n), "c": ["x"] * n})
    recent = pl.DataFrame({"a": RNG.normal(2, 1, n), "b": RNG.normal(0, 1, n), "c": ["y"] * n})
    report = drift_report(reference, recent, ["a", "b"], ["c"], score_features=["a", "b"])
    assert set(report.psi) == {"a", "b", "c"}  # every feature reported
    assert report.top[0][0] == "a"
    assert report.score == pytest.approx((report.psi["a"] + report.psi["b"]) / 2)  # c not scored


@pytest.mark.parametrize("score, expected", [(0.05, "ok"), (0.2, "warn"), (0.6, "error")])
def test_severity(score, expected):
    assert severity(score, warn=0.15, error=0.4) == expected
