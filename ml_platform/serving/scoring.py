"""Scoring stored feature rows exactly as batch scoring does, without its per-column overhead.

Batch scoring (``flight_predictions``) gives the pipeline ``model.to_pandas_features(frame,
columns)``: float64 numbers (NaN when missing) and object strings (None when missing), in
the model's column order. ``features_frame`` builds that same pandas frame (same values to
the bit, same dtypes, same order; tested against ``to_pandas_features``) straight from row
dicts as the online store returns them: one float64 block instead of a polars cast and a
pandas Series per column, 1.5 ms instead of 22 ms for one row on this machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ml_platform.domain.features import CATEGORICAL_FEATURES


def features_frame(rows: Sequence[dict], feature_columns: Sequence[str]) -> pd.DataFrame:
    """The frame ``to_pandas_features`` would build from these rows (dicts of column: value)."""
    columns = list(feature_columns)
    numeric = [c for c in columns if c not in CATEGORICAL_FEATURES]
    nan = np.nan
    block = np.array([[nan if (v := r[c]) is None else v for c in numeric] for r in rows], dtype=np.float64)
    frame = pd.DataFrame(block.reshape(len(rows), len(numeric)), columns=numeric, copy=False)
    for c in columns:
        if c in CATEGORICAL_FEATURES:  # object, not pandas 3's "str": what to_pandas_features gives
            frame[c] = pd.Series([None if r[c] is None else str(r[c]) for r in rows], dtype=object)
    return frame if list(frame.columns) == columns else frame[columns]


def predict_proba(pipeline, rows: Sequence[dict], feature_columns: Sequence[str]) -> np.ndarray:
    """The probability of arriving more than 15 minutes late, per row (the caller limits OpenMP threads)."""
    return pipeline.predict_proba(features_frame(rows, feature_columns))[:, 1]
