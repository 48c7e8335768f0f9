"""Checks that features only know what was known at ``predicted_at``.

* ``point_in_time_violations``: rows whose recorded ``*_known_at`` lies after their
  ``predicted_at`` (must be zero for every column);
* ``forbidden_columns_present``: column names that describe what the flight itself did
  after leaving (its delays, actual times, air time);
* ``single_feature_auc``: how well each numeric column alone separates delayed from
  on-time flights. Honest features of a flight an hour before departure stay far below
  ``LEAK_AUC``; a column close to the answer (say the arrival delay) is above it.
"""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import polars as pl
from sklearn.metrics import roc_auc_score

from ml_platform.domain.features import (
    FLAG_COLUMNS,
    FORBIDDEN_COLUMNS,
    FORBIDDEN_PREFIXES,
    KEY_COLUMNS,
    KNOWN_AT_COLUMNS,
    LABEL,
    TABLE,
)
from ml_platform.io.warehouse import ident

LEAK_AUC = 0.9
_NOT_FEATURES = {*KEY_COLUMNS, *KNOWN_AT_COLUMNS, *FLAG_COLUMNS, LABEL, "horizon_minutes", "flight"}


def _measured_columns(schema: pl.Schema) -> list[str]:
    """Every numeric column that is not a key, flag, known-at time or the label."""
    return [c for c, t in schema.items() if t.is_numeric() and c not in _NOT_FEATURES]


def point_in_time_violations(conn: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> dict[str, int]:
    """``{known_at column: rows of [first, last] where it is after predicted_at}``; all zero when honest."""
    counts = ", ".join(f"count(*) FILTER (WHERE {c} > predicted_at)" for c in KNOWN_AT_COLUMNS)
    row = conn.execute(
        f"SELECT {counts} FROM {TABLE} WHERE flight_date BETWEEN $first AND $last", {"first": first, "last": last}
    ).fetchone()
    return dict(zip(KNOWN_AT_COLUMNS, (int(n) for n in row), strict=True))


def forbidden_columns_present(columns) -> list[str]:
    """The names among ``columns`` that describe the flight after departure (``arr_*``, ``actual_*``, delays...)."""
    return [c for c in columns if c in FORBIDDEN_COLUMNS or c.startswith(FORBIDDEN_PREFIXES)]


def single_feature_auc(frame: pl.DataFrame, columns=None) -> dict[str, float]:
    """ROC AUC of each numeric column alone against ``is_delayed``, as max(auc, 1 - auc), highest first.

    Only labelled rows count (cancelled and diverted flights have no label), and for
    each column only the rows where it has a value (nulls and NaN dropped). A column
    with fewer than two classes or values left gets NaN. ``columns`` defaults to
    every numeric column of the frame that is not a key, flag, known-at time or the
    label, so a leaky column joined in by mistake is measured too.
    """
    if columns is None:
        columns = _measured_columns(frame.schema)
    labelled = frame.filter(pl.col(LABEL).is_not_null())
    result = {}
    for column in columns:
        values = labelled.select(pl.col(column).cast(pl.Float64).alias("x"), pl.col(LABEL).alias("y"))
        values = values.filter(pl.col("x").is_not_null() & pl.col("x").is_not_nan())
        if values.height < 2 or values["y"].n_unique() < 2 or values["x"].n_unique() < 2:
            result[column] = math.nan
            continue
        auc = float(roc_auc_score(values["y"].to_numpy(), values["x"].to_numpy()))
        result[column] = max(auc, 1 - auc)
    return _highest_first(result)


def single_feature_auc_in_table(conn: duckdb.DuckDBPyConnection, first: dt.date, last: dt.date) -> dict[str, float]:
    """``single_feature_auc`` of the rows of [first, last] of ``features.flight_features``, computed
    in DuckDB: nothing of the range is read into Python.

    The AUC is the Mann-Whitney statistic: the chance that a delayed flight has the higher
    value, ties counting half. Per distinct value, the delayed flights at it times the on-time
    flights below it (plus half those at it), summed and divided by delayed x on-time: what
    ``roc_auc_score`` gives, without sorting millions of rows in Python.
    """
    schema = conn.execute(f"SELECT * FROM {TABLE} LIMIT 0").pl().schema
    result = {}
    for column in _measured_columns(schema):
        x = f"CAST({ident(column)} AS DOUBLE)"
        auc, values, delayed, on_time = conn.execute(
            f"""
            WITH per_value AS (
                SELECT {x} AS x, count(*) FILTER (WHERE {LABEL}) AS p, count(*) FILTER (WHERE NOT {LABEL}) AS n
                FROM {TABLE}
                WHERE flight_date BETWEEN $first AND $last AND {LABEL} IS NOT NULL AND NOT isnan({x})
                GROUP BY x
            ), ranked AS (
                SELECT p, n, coalesce(sum(n) OVER (ORDER BY x ROWS UNBOUNDED PRECEDING EXCLUDE CURRENT ROW), 0) AS below
                FROM per_value
            )
            SELECT sum(p * below + p * n / 2) / (sum(p) * sum(n)), count(*), sum(p), sum(n) FROM ranked
            """,
            {"first": first, "last": last},
        ).fetchone()
        usable = values and values >= 2 and delayed and on_time
        result[column] = max(auc, 1 - auc) if usable else math.nan
    return _highest_first(result)


def _highest_first(auc: dict[str, float]) -> dict[str, float]:
    return dict(sorted(auc.items(), key=lambda item: -item[1] if not math.isnan(item[1]) else math.inf))
