"""The features layer: point-in-time flight features, training snapshots and drift."""

import dagster as dg

from ml_platform.defs.features.assets import flight_features, flight_training_set

build_features_job = dg.define_asset_job(
    "build_features",
    selection=[flight_features],
    description="Builds the features of days (or a range of days, in one run).",
)


def definitions() -> dg.Definitions:
    return dg.Definitions(assets=[flight_features, flight_training_set], jobs=[build_features_job])
