"""The features layer's pure logic: point-in-time flight features in DuckDB (no Dagster here).

    build_flight_features(conn, first, last, horizon_minutes=60)  # features.flight_features
    point_in_time_violations(conn, first, last)                   # {known_at column: rows after predicted_at}
    single_feature_auc(frame)                                     # {feature: AUC alone}, > 0.9 smells of a leak

See docs/features.md for every column, its known-at rule and the measured timings.
"""

from ml_platform.domain.features import (
    CATEGORICAL_FEATURES,
    COLUMNS,
    FORBIDDEN_COLUMNS,
    HISTORY_DAYS,
    KEY_COLUMNS,
    KNOWN_AT_COLUMNS,
    LABEL,
    NUMERIC_FEATURES,
    TABLE,
)
from ml_platform.pipeline.features.build import (
    DEFAULT_HORIZON_MINUTES,
    FeatureBuildResult,
    build_flight_features,
    create_table,
)
from ml_platform.pipeline.features.holidays import federal_holidays, holidays_around
from ml_platform.pipeline.features.leakage import (
    LEAK_AUC,
    forbidden_columns_present,
    point_in_time_violations,
    single_feature_auc,
)

__all__ = [
    "CATEGORICAL_FEATURES",
    "COLUMNS",
    "DEFAULT_HORIZON_MINUTES",
    "FORBIDDEN_COLUMNS",
    "KEY_COLUMNS",
    "HISTORY_DAYS",
    "KNOWN_AT_COLUMNS",
    "LABEL",
    "LEAK_AUC",
    "NUMERIC_FEATURES",
    "TABLE",
    "FeatureBuildResult",
    "build_flight_features",
    "create_table",
    "federal_holidays",
    "forbidden_columns_present",
    "holidays_around",
    "point_in_time_violations",
    "single_feature_auc",
]
