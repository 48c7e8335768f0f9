"""``ml.predictions`` and ``ml.model_performance``: what the model said before each flight, and
how right it turned out to be once the flights had landed.

A day is scored once. When a later champion arrives, days already scored keep the
predictions of the model that made them, so realized performance is always out of
sample and honest. Re-scoring a day with the model that already scored it replaces
its rows (idempotent).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from ml_platform.domain.calendar import days_between
from ml_platform.domain.flights import FLIGHT_KEY
from ml_platform.io.warehouse import transaction
from ml_platform.pipeline.warehouse.common import ensure_schemas
from ml_platform.pipeline.warehouse.schema import ensure_table

PREDICTIONS = "ml.predictions"
PERFORMANCE = "ml.model_performance"
KEY = FLIGHT_KEY

PREDICTION_COLUMNS = {
    "flight_date": "DATE",
    "carrier": "VARCHAR",
    "flight": "INTEGER",
    "origin": "VARCHAR",
    "sched_dep_time": "INTEGER",
    "model_version": "INTEGER",
    "predicted_at": "TIMESTAMPTZ",
    "probability": "DOUBLE",
    "predicted_class": "BOOLEAN",
    "threshold": "DOUBLE",
    "scored_at": "TIMESTAMPTZ",
}
PERFORMANCE_COLUMNS = {
    "flight_date": "DATE",
    "model_version": "INTEGER",
    "flights": "INTEGER",
    "delayed": "INTEGER",
    "roc_auc": "DOUBLE",
    "pr_auc": "DOUBLE",
    "brier": "DOUBLE",
    "mean_probability": "DOUBLE",
    "observed_rate": "DOUBLE",
    "computed_at": "TIMESTAMPTZ",
}


def create_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Create ``ml.predictions`` and ``ml.model_performance`` if missing (nothing is written when both exist)."""
    ensure_schemas(conn, ("ml",))
    ensure_table(conn, PREDICTIONS, PREDICTION_COLUMNS)
    ensure_table(conn, PERFORMANCE, PERFORMANCE_COLUMNS)


def scored_by(conn: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> dict[dt.date, set[int]]:
    """Which model versions already scored each day of [first, last]."""
    create_tables(conn)
    rows = conn.execute(
        f"SELECT DISTINCT flight_date, model_version FROM {PREDICTIONS} WHERE flight_date BETWEEN $first AND $last",
        {"first": first, "last": last},
    ).fetchall()
    found: dict[dt.date, set[int]] = {}
    for day, version in rows:
        found.setdefault(day, set()).add(version)
    return found


def days_to_score(
    conn: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date, version: int, cutoff: dt.date
) -> tuple[list[dt.date], dict[dt.date, str]]:
    """The days this model may score, and why each other day is left as it is."""
    already = scored_by(conn, first, last)
    todo, skipped = [], {}
    for day in days_between(first, last):
        if day <= cutoff:
            skipped[day] = f"model version {version} was trained on data up to {cutoff}"
        elif already.get(day) and version not in already[day]:
            skipped[day] = f"already scored by model version {sorted(already[day])[0]}; the past is not rescored"
        else:
            todo.append(day)
    return todo, skipped


def score(pipeline, rows: pl.DataFrame, version: int, threshold: float, scored_at: dt.datetime) -> pl.DataFrame:
    """One prediction per feature row: the probability of a late arrival and the class at ``threshold``."""
    from ml_platform.pipeline.model import to_pandas_features

    columns = list(pipeline.feature_names_in_)
    proba = pipeline.predict_proba(to_pandas_features(rows, columns))[:, 1] if rows.height else []
    return (
        rows.select(*KEY, "predicted_at")
        .with_columns(
            pl.lit(version, dtype=pl.Int32).alias("model_version"),
            pl.Series("probability", proba, dtype=pl.Float64),
            pl.lit(threshold).alias("threshold"),
            pl.lit(scored_at).alias("scored_at"),
        )
        .with_columns((pl.col("probability") >= threshold).alias("predicted_class"))
    )


def write_predictions(conn: duckdb.DuckDBPyConnection, frame: pl.DataFrame, days: list[dt.date], version: int) -> None:
    """Replace this version's predictions of ``days`` with ``frame`` in one transaction."""
    create_tables(conn)
    with transaction(conn):
        conn.execute(
            f"DELETE FROM {PREDICTIONS} WHERE model_version = $v AND flight_date IN (SELECT unnest($days))",
            {"v": version, "days": days},
        )
        conn.register("_new_predictions", frame)
        try:
            conn.execute(f"INSERT INTO {PREDICTIONS} BY NAME SELECT * FROM _new_predictions")
        finally:
            conn.unregister("_new_predictions")


def compute_performance(conn: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> pl.DataFrame:
    """Realized ROC AUC, PR AUC and calibration per day and model version, from labelled flights."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    create_tables(conn)
    scored = conn.execute(
        f"""
        SELECT p.flight_date, p.model_version, p.probability, f.is_delayed
        FROM {PREDICTIONS} p JOIN core.fct_flights f USING (flight_date, carrier, flight, origin, sched_dep_time)
        WHERE p.flight_date BETWEEN $first AND $last AND f.is_delayed IS NOT NULL
        """,
        {"first": first, "last": last},
    ).pl()
    rows = []
    now = dt.datetime.now(dt.UTC)
    for (day, version), part in scored.group_by("flight_date", "model_version"):
        y, p = part["is_delayed"].to_numpy(), part["probability"].to_numpy()
        both = 0 < y.sum() < len(y)
        rows.append(
            {
                "flight_date": day,
                "model_version": version,
                "flights": len(y),
                "delayed": int(y.sum()),
                "roc_auc": float(roc_auc_score(y, p)) if both else None,
                "pr_auc": float(average_precision_score(y, p)) if both else None,
                "brier": float(brier_score_loss(y, p)),
                "mean_probability": float(p.mean()),
                "observed_rate": float(y.mean()),
                "computed_at": now,
            }
        )
    frame = pl.DataFrame(
        rows,
        schema={
            "flight_date": pl.Date,
            "model_version": pl.Int32,
            "flights": pl.Int32,
            "delayed": pl.Int32,
            "roc_auc": pl.Float64,
            "pr_auc": pl.Float64,
            "brier": pl.Float64,
            "mean_probability": pl.Float64,
            "observed_rate": pl.Float64,
            "computed_at": pl.Datetime("us", "UTC"),
        },
    )
    with transaction(conn):
        conn.execute(
            f"DELETE FROM {PERFORMANCE} WHERE flight_date BETWEEN $first AND $last", {"first": first, "last": last}
        )
        conn.register("_new_performance", frame)
        try:
            conn.execute(f"INSERT INTO {PERFORMANCE} BY NAME SELECT * FROM _new_performance")
        finally:
            conn.unregister("_new_performance")
    return frame.sort("flight_date", "model_version")


def realized_auc(conn: duckdb.DuckDBPyConnection, last: dt.date, days: int = 7) -> float | None:
    """ROC AUC over every labelled prediction of the ``days`` days ending ``last`` (None if too few)."""
    from sklearn.metrics import roc_auc_score

    frame = conn.execute(
        f"""
        SELECT p.probability, f.is_delayed FROM {PREDICTIONS} p
        JOIN core.fct_flights f USING (flight_date, carrier, flight, origin, sched_dep_time)
        WHERE p.flight_date BETWEEN $first AND $last AND f.is_delayed IS NOT NULL
        """,
        {"first": last - dt.timedelta(days=days - 1), "last": last},
    ).pl()
    y = frame["is_delayed"].to_numpy()
    if len(y) < 50 or not 0 < y.sum() < len(y):
        return None
    return float(roc_auc_score(y, frame["probability"].to_numpy()))
