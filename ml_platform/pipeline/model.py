"""The flight-delay model: one scikit-learn pipeline for training and serving (no MLflow, no Dagster).

    model = train(frame)                       # frame: rows of features.flight_features
    model.metrics["roc_auc"]                   # on the newest 14 days, never seen in fitting
    model.pipeline.predict_proba(to_pandas_features(rows, model.feature_columns))[:, 1]

What the numbers mean to a person (all measured on the holdout, the newest days):

* ``roc_auc``: the chance that a delayed flight gets a higher score than an on-time
  one (0.5 = coin toss, 1 = perfect ranking).
* ``pr_auc``: average precision; compare it with ``delayed_share`` (what a model
  that knows nothing scores).
* ``log_loss`` and ``brier``: how good the probabilities are as probabilities
  (lower is better; Brier is the mean squared error of the probability).
* ``precision`` / ``recall``: at ``threshold``, the share of flagged flights that
  were really delayed / the share of delayed flights that were flagged.

The threshold maximises F1 on the training part's own (in-sample) predictions; it
is never chosen on the holdout. Only labelled rows (``is_delayed`` not null) are
used: cancelled and diverted flights have no label.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from ml_platform.domain.features import CATEGORICAL_FEATURES, LABEL, NUMERIC_FEATURES

DEFAULT_SEED = 13
DEFAULT_HOLDOUT_DAYS = 14
# Chosen by the quality protocol on September–October (docs/model.md); early stopping
# stays off so that a fit is a pure function of the data and the seed.
DEFAULT_PARAMS: dict[str, Any] = {
    "learning_rate": 0.1,
    "max_iter": 100,
    "max_leaf_nodes": 31,
    "l2_regularization": 1.0,
    "min_samples_leaf": 100,
}
# Fits and predictions use every core (``None``: OpenMP's default). The result does not
# depend on the number of threads (1 and 2 threads give the same probabilities to the last
# bit, tested), and waiting threads sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE, set
# in ml_platform/__init__.py), so a busy machine cannot stall the fit: spinning threads once
# made a 2-thread fit of January–August take 352 s instead of 51 s. On 2 cores the whole
# year's fit takes 23 s instead of 36 s on one thread. Parallel trials (the quality
# protocol's grid) run in separate processes of one thread each.
THREADS = None
# A category (destination, carrier, origin) seen on fewer than 0.5 % of the training flights
# shares one "infrequent" column: on January–August that folds 105 destinations into ~50
# columns, the fit runs 30 % faster and the September–October ROC AUC is unchanged (0.7178
# against 0.7175 with one column per destination; docs/model.md).
MIN_CATEGORY_SHARE = 0.005
PERMUTATION_ROWS = 5_000
TOP_FEATURES = 20


@dataclass(frozen=True)
class TrainedModel:
    """A fitted pipeline and what is known about it: the days it saw, its holdout scores."""

    pipeline: Pipeline
    feature_columns: list[str]
    cutoff: dt.date  # the last flight_date fitted on: only later days may be scored by it
    holdout_first: dt.date | None
    holdout_last: dt.date | None
    threshold: float
    metrics: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)


def build_pipeline(
    numeric: Sequence[str], categorical: Sequence[str], *, seed: int = DEFAULT_SEED, params: dict | None = None
) -> Pipeline:
    """Impute (median, plus a was-missing flag) and scale numbers, one-hot the categories, then boost trees.

    Categories rarer than ``MIN_CATEGORY_SHARE`` share one column; categories unknown at
    scoring get all-zero columns; a missing category is a category of its own.
    Imputation lives here, so serving needs no preparation beyond ``to_pandas_features``.
    """
    numbers = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )
    categories = OneHotEncoder(
        handle_unknown="ignore", min_frequency=MIN_CATEGORY_SHARE, sparse_output=False, dtype=np.float32
    )
    prepare = ColumnTransformer(
        [("numeric", numbers, list(numeric)), ("categorical", categories, list(categorical))],
        sparse_threshold=0.0,
        verbose_feature_names_out=False,
    )
    settings = {**DEFAULT_PARAMS, **(params or {})}
    classifier = HistGradientBoostingClassifier(early_stopping=False, random_state=seed, **settings)
    return Pipeline([("prepare", prepare), ("classifier", classifier)])


def to_pandas_features(frame: pl.DataFrame, feature_columns: Sequence[str]) -> pd.DataFrame:
    """The exact frame a model is given: float64 numbers (NaN when missing), object strings (None when missing)."""
    data = {}
    for column in feature_columns:
        values = frame[column]
        if column in CATEGORICAL_FEATURES:
            data[column] = pd.Series(values.cast(pl.String).to_list(), dtype=object)  # not pandas 3's "str"
        else:
            data[column] = pd.Series(values.cast(pl.Float64).fill_null(np.nan).to_numpy(), dtype=np.float64)
    return pd.DataFrame(data, columns=list(feature_columns))


def signature_mismatch(expected: Sequence[str], frame_columns: Iterable[str]) -> dict[str, list[str]]:
    """Columns a model needs but the frame lacks (``missing``) and ones it has but the model does not know."""
    have = list(frame_columns)
    return {
        "missing": [c for c in expected if c not in have],
        "unexpected": [c for c in have if c not in set(expected)],
    }


def labelled(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows with a label: cancelled and diverted flights have none and are never trained or scored on."""
    return frame.filter(pl.col(LABEL).is_not_null())


def holdout_days_for(frame: pl.DataFrame, requested: int = DEFAULT_HOLDOUT_DAYS) -> int:
    """The newest days to hold out: ``requested``, but at most a quarter of the frame's days (so a
    first week still trains), and at least one."""
    return min(requested, max(1, frame["flight_date"].n_unique() // 4))


def time_split(frame: pl.DataFrame, holdout_days: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(everything before, the newest ``holdout_days`` distinct flight_dates)."""
    if holdout_days < 0:
        raise ValueError(f"holdout_days must be >= 0, got {holdout_days}")
    days = frame["flight_date"].unique().sort()
    if holdout_days == 0:
        return frame, frame.clear()
    if days.len() <= holdout_days:
        raise ValueError(f"{days.len()} days cannot be split into training and {holdout_days} holdout days")
    first_holdout = days[-holdout_days]
    return frame.filter(pl.col("flight_date") < first_holdout), frame.filter(pl.col("flight_date") >= first_holdout)


def _labels(frame: pl.DataFrame) -> np.ndarray:
    return frame[LABEL].cast(pl.Int8).to_numpy()


def predict_proba(pipeline: Pipeline, frame: pl.DataFrame, feature_columns: Sequence[str]) -> np.ndarray:
    """The probability of arriving more than 15 minutes late, per row."""
    with threadpool_limits(THREADS, user_api="openmp"):
        return pipeline.predict_proba(to_pandas_features(frame, feature_columns))[:, 1]


def best_f1_threshold(y: np.ndarray, proba: np.ndarray) -> float:
    """The probability cut that maximises F1 on (y, proba)."""
    precision, recall, thresholds = precision_recall_curve(y, proba)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])


def scores(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    """The metrics of probabilities ``proba`` against labels ``y`` (see the module docstring)."""
    both = len(np.unique(y)) == 2
    flagged = (proba >= threshold).astype(int)
    return {
        "roc_auc": float(roc_auc_score(y, proba)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, proba)) if both else float("nan"),
        "log_loss": float(log_loss(y, proba, labels=[0, 1])),
        "brier": float(brier_score_loss(y, proba, pos_label=1)),
        "precision": float(precision_score(y, flagged, zero_division=0)),
        "recall": float(recall_score(y, flagged, zero_division=0)),
        "rows": len(y),
        "delayed_share": float(np.mean(y)),
    }


def evaluate(pipeline: Pipeline, frame: pl.DataFrame, threshold: float) -> dict[str, float]:
    """Scores on the labelled rows of ``frame`` (unlabelled ones are dropped)."""
    rows = labelled(frame)
    if rows.is_empty():
        raise ValueError("no labelled rows to evaluate on")
    columns = list(pipeline.feature_names_in_)
    return scores(_labels(rows), predict_proba(pipeline, rows, columns), threshold)


def _flat(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v if v is None or isinstance(v, bool | int | float | str) else str(v) for k, v in params.items()}


def train(
    frame: pl.DataFrame,
    *,
    holdout_days: int = DEFAULT_HOLDOUT_DAYS,
    seed: int = DEFAULT_SEED,
    params: dict | None = None,
    threshold: float | None = None,
    numeric: Sequence[str] = NUMERIC_FEATURES,
    categorical: Sequence[str] = CATEGORICAL_FEATURES,
) -> TrainedModel:
    """Fit on the labelled rows before the newest ``holdout_days`` days, score those days once.

    With ``holdout_days=0`` everything is fitted on and the holdout metrics are absent.
    """
    train_part, holdout = time_split(frame, holdout_days)
    train_part, holdout = labelled(train_part), labelled(holdout)
    if train_part.is_empty():
        raise ValueError("no labelled rows to train on")
    columns = [*numeric, *categorical]
    pipeline = build_pipeline(numeric, categorical, seed=seed, params=params)
    y = _labels(train_part)
    with threadpool_limits(THREADS, user_api="openmp"):
        pipeline.fit(to_pandas_features(train_part, columns), y)
    if threshold is None:
        threshold = best_f1_threshold(y, predict_proba(pipeline, train_part, columns))
    metrics: dict[str, float] = {}
    if not holdout.is_empty():
        metrics = {k: v for k, v in evaluate(pipeline, holdout, threshold).items() if k != "rows"}
    metrics |= {"train_rows": train_part.height, "holdout_rows": holdout.height}
    days = holdout["flight_date"]
    return TrainedModel(
        pipeline=pipeline,
        feature_columns=columns,
        cutoff=train_part["flight_date"].max(),
        holdout_first=days.min() if len(days) else None,
        holdout_last=days.max() if len(days) else None,
        threshold=float(threshold),
        metrics=metrics,
        params=_flat(pipeline.named_steps["classifier"].get_params()),
    )


def _png(draw, size=(6, 5)) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)  # no pyplot: no global state, safe in any thread
    FigureCanvasAgg(fig)
    draw(fig.add_subplot())
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _input_columns_of_prepared(pipeline: Pipeline, columns: Sequence[str]) -> list[list[int]]:
    """For each input column, the columns of the prepared matrix made from it (value, missing flag, one-hot)."""
    prepare = pipeline.named_steps["prepare"]
    made_from: dict[str, list[int]] = {c: [] for c in columns}
    for block, inputs in ((name, list(cols)) for name, _, cols in prepare.transformers_ if name != "remainder"):
        start = prepare.output_indices_[block].start
        for i, name in enumerate(prepare.named_transformers_[block].get_feature_names_out(inputs)):
            if block == "numeric":
                source = name.removeprefix("missingindicator_")
            else:  # one-hot columns are named <input>_<category>; no input name is the prefix of another
                source = next(c for c in inputs if name.startswith(f"{c}_"))
            made_from[source].append(start + i)
    return [made_from[c] for c in columns]


def permutation_importance(
    pipeline: Pipeline, x: pd.DataFrame, y: np.ndarray, *, repeats: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the drop in ROC AUC when one input column is shuffled, per column of ``x``.

    What ``sklearn.inspection.permutation_importance`` measures, but the preparation runs
    once instead of once per column and repeat (5.5 s instead of 9 s on 5,000 holdout rows):
    it works row by row, so shuffling an input column shuffles the prepared columns made from
    it the same way (tested).
    """
    prepared = pipeline.named_steps["prepare"].transform(x)
    classifier = pipeline.named_steps["classifier"]
    base = roc_auc_score(y, classifier.predict_proba(prepared)[:, 1])
    rng = np.random.default_rng(seed)
    drops = np.empty((x.shape[1], repeats))
    for j, columns in enumerate(_input_columns_of_prepared(pipeline, list(x.columns))):
        original = prepared[:, columns].copy()
        for r in range(repeats):
            prepared[:, columns] = original[rng.permutation(len(y))]
            drops[j, r] = base - roc_auc_score(y, classifier.predict_proba(prepared)[:, 1])
        prepared[:, columns] = original
    return drops.mean(axis=1), drops.std(axis=1)


def plots(model: TrainedModel, holdout: pl.DataFrame, *, seed: int = DEFAULT_SEED) -> dict[str, bytes]:
    """PNG charts of the model on ``holdout``'s labelled rows.

    ``roc_curve.png`` and ``pr_curve.png`` (ranking), ``calibration.png`` (reliability
    diagram, 10 equal-width bins: are 30 % predictions delayed 30 % of the time?), and
    ``feature_importance.png``: how much the ROC AUC drops when one column is shuffled
    (permutation importance, 3 repeats on at most 5,000 holdout rows drawn with ``seed``), top 20.
    """
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import roc_curve

    rows = labelled(holdout)
    y = _labels(rows)
    x = to_pandas_features(rows, model.feature_columns)
    sample = np.random.default_rng(seed).permutation(len(y))[:PERMUTATION_ROWS]
    with threadpool_limits(THREADS, user_api="openmp"):
        proba = model.pipeline.predict_proba(x)[:, 1]
        importance, spread = permutation_importance(model.pipeline, x.iloc[sample], y[sample], repeats=3, seed=seed)

    def roc(ax):
        fpr, tpr, _ = roc_curve(y, proba)
        ax.plot(fpr, tpr, label=f"model, AUC {roc_auc_score(y, proba):.3f}")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="coin toss")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (holdout)")
        ax.legend(loc="lower right")

    def pr(ax):
        precision, recall, _ = precision_recall_curve(y, proba)
        ax.plot(recall, precision, label=f"model, AP {average_precision_score(y, proba):.3f}")
        ax.axhline(y.mean(), linestyle="--", color="grey", label=f"delayed share {y.mean():.3f}")
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve (holdout)")
        ax.legend(loc="upper right")

    def calibration(ax):
        observed, predicted = calibration_curve(y, proba, n_bins=10, strategy="uniform")
        ax.plot(predicted, observed, marker="o", label="model")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
        ax.set(
            xlabel="mean predicted probability",
            ylabel="observed delayed share",
            title="Reliability diagram (10 bins, holdout)",
        )
        ax.legend(loc="upper left")

    def features(ax):
        order = np.argsort(importance)[::-1][:TOP_FEATURES][::-1]
        names = [model.feature_columns[i] for i in order]
        ax.barh(names, importance[order], xerr=spread[order])
        ax.set(
            xlabel="drop in ROC AUC when the column is shuffled",
            title=f"Permutation importance (top {TOP_FEATURES}, holdout)",
        )

    return {
        "roc_curve.png": _png(roc),
        "pr_curve.png": _png(pr),
        "calibration.png": _png(calibration),
        "feature_importance.png": _png(features, size=(7, 7)),
    }
