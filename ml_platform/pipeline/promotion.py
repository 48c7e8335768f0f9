"""The champion gate: does a newly trained challenger replace the champion?

Both models are scored on the challenger's held-out days, which neither trained on. The
challenger wins when there is no champion yet, or when it beats the champion by a margin
(ROC AUC, higher is better), and only if its training set passed its checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from ml_platform.domain.flights import LABEL
from ml_platform.pipeline.model import to_pandas_features

DEFAULT_MARGIN = 0.005


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def holdout_roc_auc(pipeline, rows: pl.DataFrame) -> float | None:
    """ROC AUC of ``pipeline`` on labelled ``rows``; None when there is nothing to rank (one class)."""
    from sklearn.metrics import roc_auc_score

    if rows.is_empty():
        return None
    y = rows[LABEL].to_numpy()
    if not 0 < y.sum() < len(y):
        return None
    proba = pipeline.predict_proba(to_pandas_features(rows, list(pipeline.feature_names_in_)))[:, 1]
    return float(roc_auc_score(y, proba))


def decide_promotion(challenger_score: float | None, champion_score: float | None, margin: float) -> tuple[bool, str]:
    """Promote when there is no champion yet, or when challenger >= champion + margin (higher is better)."""

    def missing(x: float | None) -> bool:
        return x is None or (isinstance(x, float) and math.isnan(x))

    if not math.isfinite(margin):
        raise ValueError(f"margin must be a finite number, got {margin!r}")
    if missing(champion_score):
        return True, "no champion yet"
    if missing(challenger_score):
        return False, f"challenger has no score; champion {champion_score:.4f}, margin {margin:.4f}"
    needed = champion_score + margin
    if challenger_score >= needed:
        return True, f"challenger {challenger_score:.4f} >= champion {champion_score:.4f} + margin {margin:.4f}"
    return False, (
        f"challenger {challenger_score:.4f} < champion {champion_score:.4f} + margin {margin:.4f} = {needed:.4f}"
    )


def gate(
    *,
    challenger_version: int,
    champion_version: int | None,
    challenger_score: float | None,
    champion_score: float | None,
    training_set_passed: bool,
    margin: float = DEFAULT_MARGIN,
) -> PromotionDecision:
    """The whole gate: checks first, then "already champion", then the scores."""
    if not training_set_passed:
        return PromotionDecision(False, "the challenger's training set did not pass its checks")
    if champion_version is not None and champion_version == challenger_version:
        return PromotionDecision(False, f"version {challenger_version} is already champion")
    promote, reason = decide_promotion(challenger_score, None if champion_version is None else champion_score, margin)
    return PromotionDecision(promote, reason)
