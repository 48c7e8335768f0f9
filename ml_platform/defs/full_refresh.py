"""The full-refresh job: every layer from the landing files to predictions, for a range of days."""

import dagster as dg

from ml_platform.defs.keys import PERFORMANCE, PREDICTIONS, TRAINING_SET

full_refresh_job = dg.define_asset_job(
    "full_refresh",
    selection=(dg.AssetSelection.groups("lake", "warehouse", "features") - dg.AssetSelection.assets(TRAINING_SET))
    | dg.AssetSelection.assets(PREDICTIONS, PERFORMANCE),
    description="Rebuilds the lake, warehouse, features, predictions and performance of a range of "
    "days in one run (select the range in the launchpad). Training stays with train_and_promote.",
)
