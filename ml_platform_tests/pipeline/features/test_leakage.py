"""No single feature predicts the label too well: above an AUC of 0.9 alone, a column is a leak.

An honest feature an hour before departure separates delayed from on-time flights
only moderately (the best, the mean departure delay at the airport over the last
two hours, about 0.7). The flight's own arrival delay, joined in on purpose, is
caught.
"""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import polars as pl
import pytest

from ml_platform.pipeline.features import LEAK_AUC, NUMERIC_FEATURES, single_feature_auc
from ml_platform.pipeline.features.leakage import single_feature_auc_in_table

KEY = "flight_date, carrier, flight, origin, sched_dep_time"


def month(conn, first="2013-07-01", last="2013-07-31") -> pl.DataFrame:
    """A month of features with the flight's own delays joined in (the leaks to catch)."""
    return conn.execute(
        f"SELECT x.*, f.arr_delay, f.dep_delay FROM features.flight_features x "
        f"JOIN core.fct_flights f USING ({KEY}) WHERE flight_date BETWEEN $first AND $last",
        {"first": first, "last": last},
    ).pl()


def test_every_feature_alone_stays_below_the_leak_threshold_and_a_leak_is_caught(year_features):
    frame = month(year_features.conn)
    assert frame.height == 29_425  # July 2013
    auc = single_feature_auc(frame.drop("arr_delay", "dep_delay"))
    print("\nsingle-feature AUC, July 2013, top 10:", {k: round(v, 3) for k, v in list(auc.items())[:10]})
    assert set(auc) == set(NUMERIC_FEATURES)
    assert [k for k, v in auc.items() if math.isnan(v)] == ["month"]  # one value in a month: nothing to rank
    assert {k: v for k, v in auc.items() if v >= LEAK_AUC} == {}
    top = next(iter(auc))
    assert top == "origin_mean_dep_delay_2h" and 0.65 < auc[top] < 0.8
    # The same month with the flight's own delays among the columns: both are measured, arr_delay is a leak.
    leaky = single_feature_auc(frame)
    print("with the flight's own delays:", {k: round(leaky[k], 3) for k in ("arr_delay", "dep_delay")})
    assert leaky["arr_delay"] > 0.99  # is_delayed is arr_delay > 15: it separates perfectly
    assert leaky["arr_delay"] > LEAK_AUC and next(iter(leaky)) == "arr_delay"


def test_the_auc_computed_in_duckdb_equals_scikit_learns(year_features):
    frame = year_features.conn.execute(
        "SELECT * FROM features.flight_features WHERE flight_date BETWEEN '2013-07-01' AND '2013-07-31'"
    ).pl()
    in_duckdb = single_feature_auc_in_table(year_features.conn, dt.date(2013, 7, 1), dt.date(2013, 7, 31))
    with_sklearn = single_feature_auc(frame)
    assert list(in_duckdb) == list(with_sklearn)  # same columns, same order
    assert in_duckdb == pytest.approx(with_sklearn, rel=1e-12, nan_ok=True)


def test_every_month_stays_below_the_threshold(year_features):
    frame = year_features.conn.execute("SELECT * FROM features.flight_features").pl()
    worst = {}
    for (m,), part in frame.group_by(["month"]):
        auc = single_feature_auc(part, columns=NUMERIC_FEATURES)
        name = max((k for k in auc if not math.isnan(auc[k])), key=auc.get)
        worst[m] = (name, round(auc[name], 3))
    print("\nbest single feature per month:", dict(sorted(worst.items())))
    assert all(v < LEAK_AUC for _, v in worst.values())


def test_auc_ignores_unlabelled_rows_nulls_and_nan():
    frame = pl.DataFrame(
        {
            "is_delayed": [True, False, True, False, None, True, False],
            "perfect": [9.0, 1.0, 8.0, 2.0, 100.0, None, float("nan")],  # the unlabelled 100 must not count
            "reversed": [1, 9, 2, 8, 5, 3, 7],
            "constant": [1, 1, 1, 1, 1, 1, 1],
            "empty": pl.Series([None] * 7, dtype=pl.Float64),
            "flight": [1, 2, 3, 4, 5, 6, 7],  # an identifier, not a feature
        }
    )
    auc = single_feature_auc(frame)
    assert set(auc) == {"perfect", "reversed", "constant", "empty"}
    assert auc["perfect"] == 1.0 and auc["reversed"] == 1.0  # max(auc, 1 - auc)
    assert math.isnan(auc["constant"]) and math.isnan(auc["empty"])
    assert list(auc)[:2] == ["perfect", "reversed"]  # highest first, NaN last


def test_auc_in_duckdb_ignores_unlabelled_rows_nulls_and_nan():
    frame = pl.DataFrame(
        {
            "flight_date": [dt.date(2013, 1, 1)] * 7 + [dt.date(2013, 1, 2)],  # the second day is outside the range
            "is_delayed": [True, False, True, False, None, True, False, True],
            "perfect": [9.0, 1.0, 8.0, 2.0, 100.0, None, float("nan"), 0.0],
            "reversed": [1, 9, 2, 8, 5, 3, 7, 100],
            "ties": [1, 1, 2, 1, 1, 1, 1, 1],  # labelled: delayed 1, 2, 1 against on-time 1, 1, 1
            "constant": [1, 1, 1, 1, 1, 1, 1, 1],
            "empty": pl.Series([None] * 8, dtype=pl.Float64),
            "flight": [1, 2, 3, 4, 5, 6, 7, 8],
        }
    )
    with duckdb.connect() as conn:
        conn.execute("CREATE SCHEMA features")
        conn.execute("CREATE TABLE features.flight_features AS SELECT * FROM frame")
        auc = single_feature_auc_in_table(conn, dt.date(2013, 1, 1), dt.date(2013, 1, 1))
    assert set(auc) == {"perfect", "reversed", "ties", "constant", "empty"}
    assert auc["perfect"] == 1.0 and auc["reversed"] == 1.0
    assert auc["ties"] == pytest.approx(2 / 3)  # (3 pairs won + 6 tied / 2) of 9
    assert auc["ties"] == pytest.approx(single_feature_auc(frame.head(7), ["ties"])["ties"])
    assert math.isnan(auc["constant"]) and math.isnan(auc["empty"])
    assert list(auc)[:2] == ["perfect", "reversed"]
