"""The retraining policy: 7 new labelled days, drift at ERROR, or a week, and never on the same data."""

from __future__ import annotations

import datetime as dt

from ml_platform.pipeline.retraining import RetrainPolicy, TrainingState, decide

NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


def days(first: int, last: int) -> frozenset[dt.date]:
    return frozenset(dt.date(2013, 1, d) for d in range(first, last + 1))


def state(**changes) -> TrainingState:
    base = dict(
        feature_days=days(1, 13),
        champion_cutoff=dt.date(2013, 1, 6),
        last_trained_day=dt.date(2013, 1, 7),
        last_trained_at=NOW - dt.timedelta(hours=1),
        features_rebuilt=True,
        drift_error=None,
        now=NOW,
    )
    return TrainingState(**{**base, **changes})


def test_the_first_model_waits_for_a_week_of_labelled_days():
    first = dict(champion_cutoff=None, last_trained_day=None, last_trained_at=None)
    waiting = decide(state(feature_days=days(1, 6), **first))
    assert not waiting.retrain and waiting.reason == "6 of 7 labelled days needed for a first model"
    decision = decide(state(feature_days=days(1, 7), **first))
    assert decision.retrain and decision.reason == "7 new labelled days (2013-01-01..2013-01-07) and no model yet"


def test_seven_days_no_training_has_seen_retrain():
    waiting = decide(state())  # 01-08..01-13: six days after the last training set's newest day
    assert not waiting.retrain and waiting.reason.startswith("6 of 7 new labelled days")
    decision = decide(state(feature_days=days(1, 14)))
    assert decision.retrain and decision.reason == "7 new labelled days (2013-01-08..2013-01-14) since 2013-01-07"


def test_a_refused_challenger_does_not_retrain_every_following_day():
    # the champion still ends 01-06, but the last training already saw up to 01-14
    assert not decide(state(feature_days=days(1, 15), last_trained_day=dt.date(2013, 1, 14))).retrain


def test_the_number_of_days_is_settable():
    assert decide(state(), RetrainPolicy(new_days=3)).retrain


def test_drift_at_error_retrains_at_once():
    decision = decide(state(drift_error="drift score 0.128 for the week ending 2013-02-10 (error)"))
    assert decision.retrain and decision.reason.startswith("drift reached ERROR: drift score 0.128")


def test_a_week_of_wall_clock_retrains():
    decision = decide(state(last_trained_at=NOW - dt.timedelta(days=8)))
    assert decision.retrain and decision.reason == "weekly retrain: the last model was trained 8 days ago"


def test_unchanged_data_never_retrains_whatever_the_trigger():
    same = dict(features_rebuilt=False, feature_days=days(1, 7), drift_error="error")
    decision = decide(state(last_trained_at=NOW - dt.timedelta(days=30), **same))
    assert not decision.retrain and "data is the same" in decision.reason
