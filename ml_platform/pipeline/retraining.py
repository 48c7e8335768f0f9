"""When the model retrains: the policy, as a pure function of what the platform knows.

Retrain when the first of these happens:

- ``new_days`` (7) labelled days arrived that no training has seen yet: days after the
  champion's training cut-off and after the newest day the last trained model saw (so a
  refused challenger does not cause a retrain every following day; a failed training
  does not count);
- the drift check reached ERROR since the last training;
- a week of wall-clock time passed since the last training.

Never retrain when no feature day was built since the last model was trained and no day is
newer than its data: the training data would be the same. A day's landing file is delivered after the day, with
each flight's outcome, so a day with features is a labelled day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

DEFAULT_NEW_DAYS = 7
DEFAULT_EVERY_DAYS = 7


@dataclass(frozen=True)
class RetrainPolicy:
    new_days: int = DEFAULT_NEW_DAYS
    every: dt.timedelta = dt.timedelta(days=DEFAULT_EVERY_DAYS)


@dataclass(frozen=True)
class TrainingState:
    """What the platform knows at one moment."""

    feature_days: frozenset[dt.date]  # days whose features exist (each labelled)
    champion_cutoff: dt.date | None  # the last day the champion was fitted on
    last_trained_day: dt.date | None  # the newest day in the last trained model's training set
    last_trained_at: dt.datetime | None  # when that model was trained
    features_rebuilt: bool  # a feature day was (re)built after that model
    drift_error: str | None  # the drift check's ERROR description, if it fired after that
    now: dt.datetime


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str


def decide(state: TrainingState, policy: RetrainPolicy = RetrainPolicy()) -> Decision:
    """Whether to retrain now, and why (or why not), in words a person reads in the UI."""
    seen = max((d for d in (state.champion_cutoff, state.last_trained_day) if d), default=None)
    new = sorted(d for d in state.feature_days if seen is None or d > seen)
    if state.last_trained_at is not None and not state.features_rebuilt and not new:
        return Decision(False, "no feature day changed since the last model was trained: the data is the same")
    if len(new) >= policy.new_days:
        since = f"since {seen}" if seen else "and no model yet"
        return Decision(True, f"{len(new)} new labelled days ({new[0]}..{new[-1]}) {since}")
    if state.drift_error:
        return Decision(True, f"drift reached ERROR: {state.drift_error}")
    if state.last_trained_at is not None and state.now - state.last_trained_at >= policy.every:
        days = (state.now - state.last_trained_at).days
        return Decision(True, f"weekly retrain: the last model was trained {days} days ago")
    if state.last_trained_at is None:
        return Decision(False, f"{len(new)} of {policy.new_days} labelled days needed for a first model")
    return Decision(
        False,
        f"{len(new)} of {policy.new_days} new labelled days, no drift ERROR, "
        f"trained less than {policy.every.days} days ago",
    )
