"""How far the recent flights' features have moved from what the model was trained on.

The population stability index (PSI) compares the share of rows in each bin:
``sum((recent - reference) * ln(recent / reference))``. Numeric features use fixed
quantile bins cut on the reference (missing values are a bin of their own);
categorical features use their categories. A PSI near 0 means no change; by the
usual rule of thumb 0.1 is a shift worth a look and 0.25 a large one. The
thresholds here are calibrated on the real 2013 data (docs/drift.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl

BINS = 10
EPSILON = 1e-4  # share given to an empty bin, so an unseen bin scores high but finite


def _psi(reference: np.ndarray, recent: np.ndarray) -> float:
    ref = np.clip(reference / max(reference.sum(), 1), EPSILON, None)
    cur = np.clip(recent / max(recent.sum(), 1), EPSILON, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def numeric_psi(reference: pl.Series, recent: pl.Series, bins: int = BINS) -> float:
    """PSI over quantile bins of the reference; missing values form one more bin."""
    ref = reference.cast(pl.Float64)
    cur = recent.cast(pl.Float64)
    present = ref.drop_nulls().drop_nans().to_numpy()
    if present.size == 0:
        return 0.0
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))

    def counts(values: pl.Series) -> np.ndarray:
        finite = values.drop_nulls().drop_nans().to_numpy()
        binned = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=len(edges) + 1)
        return np.append(binned, len(values) - finite.size)

    return _psi(counts(ref), counts(cur))


def categorical_psi(reference: pl.Series, recent: pl.Series) -> float:
    """PSI over the categories seen in either sample (missing is a category)."""
    ref = reference.cast(pl.String).fill_null("<missing>").value_counts()
    cur = recent.cast(pl.String).fill_null("<missing>").value_counts()
    name = reference.name
    joined = ref.join(cur, on=name, how="full", coalesce=True, suffix="_recent").fill_null(0)
    return _psi(joined["count"].to_numpy(), joined["count_recent"].to_numpy())


@dataclass(frozen=True)
class DriftReport:
    """Per-feature PSI, and the score the thresholds apply to."""

    psi: dict[str, float]
    score: float
    top: list[tuple[str, float]]


def drift_report(
    reference: pl.DataFrame,
    recent: pl.DataFrame,
    numeric: Iterable[str],
    categorical: Iterable[str] = (),
    *,
    score_features: Iterable[str] | None = None,
) -> DriftReport:
    """PSI of every feature; the score is the mean PSI of ``score_features`` (default: all).

    One feature's PSI is noisy on a week of data; the mean over a few features that
    move together when operations are disrupted is what separates real drift.
    """
    psi = {c: numeric_psi(reference[c], recent[c]) for c in numeric}
    psi |= {c: categorical_psi(reference[c], recent[c]) for c in categorical}
    scored = list(score_features) if score_features is not None else list(psi)
    score = float(np.mean([psi[c] for c in scored])) if scored else 0.0
    top = sorted(((c, psi[c]) for c in scored), key=lambda kv: kv[1], reverse=True)[:3]
    return DriftReport(psi=psi, score=score, top=top)


def severity(score: float, warn: float, error: float) -> str:
    """'ok', 'warn' or 'error' for a drift score."""
    return "error" if score >= error else "warn" if score >= warn else "ok"


# --- calibrated for features.flight_features on the real 2013 year (docs/drift.md) ---------
# The score's features: how the airport is operating (departures and cancellations in the two
# hours before the prediction) and which fleet is flying (planes' use, engines, seats, age).
# Weather, calendar and delay-rate history move with the seasons every week on this data
# (PSI above 1 on ordinary weeks) and would make every week "drift"; they are still reported.
DRIFT_FEATURES = (
    "origin_departed_2h",
    "origin_cancelled_2h",
    "tailnum_n_7d",
    "engines",
    "seats",
    "plane_age",
)
DRIFT_WARN = 0.06
DRIFT_ERROR = 0.10
