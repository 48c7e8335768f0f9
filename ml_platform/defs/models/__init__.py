"""The models layer: training, the champion gate, daily predictions and realized performance."""

import dagster as dg

from ml_platform.defs.features.assets import flight_training_set
from ml_platform.defs.models.assets import (
    CHAMPION,
    champion_model,
    flight_delay_model,
    flight_predictions,
    model_performance,
)
from ml_platform.defs.models.retraining import retraining_sensor

train_and_promote_job = dg.define_asset_job(
    "train_and_promote",
    selection=[flight_training_set, flight_delay_model, champion_model],
    description="Freezes a training set, trains a challenger, and promotes it if it beats the champion "
    "(the retraining sensor runs it when its policy says so).",
)
rollback_job = dg.define_asset_job(
    "rollback_champion",
    selection=[champion_model],
    description="Moves `champion` back to a named earlier model version (set rollback_to), with an audit record.",
)
score_days_job = dg.define_asset_job(
    "score_days",
    selection=[flight_predictions, model_performance],
    description="Scores days with the champion and measures the realized performance (one run per range).",
)


def definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[flight_delay_model, champion_model, flight_predictions, model_performance],
        jobs=[train_and_promote_job, rollback_job, score_days_job],
        sensors=[retraining_sensor],
    )


__all__ = ["CHAMPION", "definitions"]
