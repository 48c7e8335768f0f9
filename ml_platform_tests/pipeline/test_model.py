"""The delay model on real features of January–February 2013 (the blizzard included).

The model here is small (``FAST``) to keep the tests quick; the quality protocol
(``test_quality.py``) measures the real settings on the whole year.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from ml_platform.devdata.offline_year import build_year_warehouse
from ml_platform.pipeline import model as m
from ml_platform.pipeline.features import CATEGORICAL_FEATURES, LABEL, NUMERIC_FEATURES, build_flight_features
from ml_platform_tests.warehouses import connect, embedded_config

FIRST, LAST = dt.date(2013, 1, 1), dt.date(2013, 2, 28)
FAST = {"max_iter": 40}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    root = tmp_path_factory.mktemp("model")
    conn = connect(embedded_config(root / "warehouse"))
    build_year_warehouse(conn, root / "lake", FIRST, LAST)
    build_flight_features(conn, FIRST, LAST)
    rows = conn.execute("SELECT * FROM features.flight_features").pl()
    conn.close()
    return rows


@pytest.fixture(scope="module")
def trained(frame: pl.DataFrame) -> m.TrainedModel:
    return m.train(frame, params=FAST)


def test_holdout_is_the_newest_14_days_and_cutoff_the_day_before(frame, trained):
    assert trained.holdout_first == dt.date(2013, 2, 15)
    assert trained.holdout_last == LAST
    assert trained.cutoff == trained.holdout_first - dt.timedelta(days=1)
    train_part, holdout = m.time_split(frame, 14)
    assert holdout["flight_date"].n_unique() == 14
    assert train_part["flight_date"].max() < holdout["flight_date"].min()
    assert train_part.height + holdout.height == frame.height


def test_time_split_edges(frame):
    everything, nothing = m.time_split(frame, 0)
    assert (everything.height, nothing.height) == (frame.height, 0)
    with pytest.raises(ValueError):
        m.time_split(frame, frame["flight_date"].n_unique())


def test_metrics_are_present_and_sane(trained):
    metrics = trained.metrics
    assert set(metrics) >= {
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "precision",
        "recall",
        "train_rows",
        "holdout_rows",
        "delayed_share",
    }
    print(f"\nJan–Feb, holdout 02-15..02-28: {metrics}")
    assert 0.5 < metrics["roc_auc"] < 1
    assert metrics["pr_auc"] > metrics["delayed_share"]  # better than knowing nothing
    assert 0 < metrics["brier"] < 0.25 and 0 < metrics["log_loss"] < 1
    assert 0 < metrics["precision"] <= 1 and 0 < metrics["recall"] <= 1
    assert 0 < trained.threshold < 1
    assert trained.feature_columns == [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]
    assert trained.params["max_iter"] == 40 and trained.params["random_state"] == 13
    assert trained.params["early_stopping"] is False


def test_cancelled_and_diverted_flights_are_neither_trained_nor_scored(frame, trained):
    unlabelled = frame.filter(pl.col(LABEL).is_null())
    assert unlabelled.height > 1000  # the 2013-02-08/09 blizzard alone cancelled ~1,000
    assert unlabelled["is_cancelled"].any() and unlabelled["is_diverted"].any()
    train_part, holdout = m.time_split(frame, 14)
    assert trained.metrics["train_rows"] == train_part[LABEL].count()
    assert trained.metrics["holdout_rows"] == holdout[LABEL].count()
    assert trained.metrics["train_rows"] + trained.metrics["holdout_rows"] < frame.height
    scored = m.evaluate(trained.pipeline, holdout, trained.threshold)
    assert scored["rows"] == holdout[LABEL].count()
    assert scored["roc_auc"] == trained.metrics["roc_auc"]


def test_same_data_and_seed_give_identical_predictions(frame, trained):
    again = m.train(frame, params=FAST)
    _, holdout = m.time_split(frame, 14)
    first = m.predict_proba(trained.pipeline, holdout, trained.feature_columns)
    second = m.predict_proba(again.pipeline, holdout, again.feature_columns)
    assert np.array_equal(first, second)
    assert again.threshold == trained.threshold and again.metrics == trained.metrics


def test_unseen_and_missing_categories_at_scoring_do_not_crash(frame, trained):
    rows = frame.tail(5).with_columns(
        pl.Series("carrier", ["ZZ", None, "ZZ", "9E", "AA"]),
        pl.Series("dest", ["XXX", "XXX", None, "ORD", "ATL"]),
        pl.lit(None, dtype=pl.Int32).alias("plane_age"),
    )
    proba = m.predict_proba(trained.pipeline, rows, trained.feature_columns)
    assert proba.shape == (5,) and np.all((proba >= 0) & (proba <= 1))


def test_the_model_input_frame_has_stable_dtypes(frame):
    x = m.to_pandas_features(frame.head(100), [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES])
    assert list(x.columns) == [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]
    assert all(x[c].dtype == np.float64 for c in NUMERIC_FEATURES)  # integers with nulls too
    assert all(x[c].dtype == object for c in CATEGORICAL_FEATURES)
    assert x["plane_age"].isna().any()  # NaN, not a sentinel: the pipeline imputes


def test_signature_mismatch_names_the_columns():
    expected = ["a", "b", "c"]
    assert m.signature_mismatch(expected, ["a", "b", "c"]) == {"missing": [], "unexpected": []}
    assert m.signature_mismatch(expected, ["a", "c", "arr_delay"]) == {"missing": ["b"], "unexpected": ["arr_delay"]}


def test_shuffling_prepared_columns_equals_shuffling_the_input_column(frame, trained):
    """The fast permutation importance shuffles the prepared columns made from an input column."""
    _, holdout = m.time_split(m.labelled(frame), 14)
    x = m.to_pandas_features(holdout, trained.feature_columns).iloc[:2_000]
    prepared = trained.pipeline.named_steps["prepare"].transform(x)
    order = np.random.default_rng(0).permutation(len(x))
    made_from = m._input_columns_of_prepared(trained.pipeline, trained.feature_columns)
    assert sorted(i for columns in made_from for i in columns) == list(range(prepared.shape[1]))
    for column, columns in zip(trained.feature_columns, made_from, strict=True):
        shuffled_input = x.copy()
        shuffled_input[column] = x[column].to_numpy()[order]
        shuffled_prepared = prepared.copy()
        shuffled_prepared[:, columns] = prepared[order][:, columns]
        assert np.array_equal(trained.pipeline.named_steps["prepare"].transform(shuffled_input), shuffled_prepared), (
            column
        )
    # Same measure as scikit-learn's (other random shuffles): the same strongest column, close values.
    from sklearn.inspection import permutation_importance

    y = m._labels(holdout[:2_000])
    ours, spread = m.permutation_importance(trained.pipeline, x, y, repeats=3, seed=1)
    theirs = permutation_importance(trained.pipeline, x, y, scoring="roc_auc", n_repeats=3, random_state=1)
    assert ours.shape == spread.shape == (len(trained.feature_columns),)
    print(
        f"\nstrongest: ours {trained.feature_columns[int(np.argmax(ours))]} {ours.max():.4f}, scikit-learn "
        f"{trained.feature_columns[int(np.argmax(theirs.importances_mean))]} {theirs.importances_mean.max():.4f}, "
        f"correlation {np.corrcoef(ours, theirs.importances_mean)[0, 1]:.3f}"
    )
    assert np.argmax(ours) == np.argmax(theirs.importances_mean)
    assert np.corrcoef(ours, theirs.importances_mean)[0, 1] > 0.9


def test_one_or_two_threads_give_the_same_model(frame):
    from threadpoolctl import threadpool_limits

    train_part, holdout = m.time_split(m.labelled(frame), 14)
    columns = [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]
    probabilities = []
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="openmp"):
            pipeline = m.build_pipeline(NUMERIC_FEATURES, CATEGORICAL_FEATURES, params=FAST)
            pipeline.fit(m.to_pandas_features(train_part, columns), m._labels(train_part))
            probabilities.append(pipeline.predict_proba(m.to_pandas_features(holdout, columns))[:, 1])
    assert np.array_equal(*probabilities)


def test_plots_are_png_images(frame, trained):
    _, holdout = m.time_split(frame, 14)
    charts = m.plots(trained, holdout)
    assert set(charts) == {"roc_curve.png", "pr_curve.png", "calibration.png", "feature_importance.png"}
    for name, data in charts.items():
        assert data.startswith(PNG) and len(data) > 5_000, name
