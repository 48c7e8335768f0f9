"""Models: train and register a challenger, promote it past a gate, score days, measure reality.

Lineage runs both ways: every MLflow run carries the Dagster run, asset, training window,
cut-off, code version and training-set version as tags; every materialization here links
to the MLflow run and model version.
"""

import datetime as dt
from dataclasses import astuple

import dagster as dg
import polars as pl

from ml_platform.defs.automation import on_upstream_change
from ml_platform.defs.keys import CHAMPION, FCT_FLIGHTS, FEATURES, MODEL, PERFORMANCE, PREDICTIONS, TRAINING_SET
from ml_platform.defs.metadata import add_daily_metadata, add_table_schema, json_rows, snapshot_metadata
from ml_platform.defs.partitions import daily_partitions, day_range
from ml_platform.defs.pools import pool_for
from ml_platform.defs.resources import MLflowResource, StoreResource, WarehouseResource
from ml_platform.domain import lake_layout
from ml_platform.domain.calendar import days_between
from ml_platform.io import registry
from ml_platform.ops.version import code_version
from ml_platform.pipeline import features as ft
from ml_platform.pipeline import lake, model, promotion, training_set
from ml_platform.pipeline import predictions as pr
from ml_platform.pipeline.warehouse.common import read_days

SPEC = dict(group_name="models", owners=["team:ml"])
# Predictions and performance: one row set per day, a range in one run, each in its table's pool.
DAILY = dict(
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"duckdb", "parquet"},
    **SPEC,
)
PIP_REQUIREMENTS = ["scikit-learn==1.9.1", "pandas", "numpy"]


class TrainingConfig(dg.Config):
    """``holdout_days``: the newest days kept out of the fit to score the model on (at most a
    quarter of the days in the training set, so a first week still trains)."""

    holdout_days: int = model.DEFAULT_HOLDOUT_DAYS
    seed: int = model.DEFAULT_SEED


class PromotionConfig(dg.Config):
    """``rollback_to``: a model version to make champion again (the rollback job); 0 = promote."""

    rollback_to: int = 0
    margin: float = promotion.DEFAULT_MARGIN


def _latest_snapshot(instance: dg.DagsterInstance) -> tuple[str, str, str]:
    """(lake path, sha256, data version) of the newest training set."""
    event = instance.get_latest_materialization_event(TRAINING_SET)
    if event is None:
        raise dg.Failure(description="No training set yet: materialize features/training_set first.")
    meta = event.asset_materialization.metadata
    digest = meta["content_sha256"].value
    return lake_layout.snapshot_path(digest), digest, meta["location"].value


def _labelled_days(store, first: dt.date, last: dt.date) -> pl.DataFrame:
    """Published features of [first, last] with a label (read from the lake: no warehouse lock)."""
    frame = lake.read_published_days(store, "flight_features", days_between(first, last))
    return frame.filter(pl.col(ft.LABEL).is_not_null()) if frame.height else frame


@dg.asset(
    key=MODEL,
    deps=[TRAINING_SET],
    kinds={"scikitlearn", "mlflow"},
    automation_condition=on_upstream_change(),  # a training set frozen by hand trains a model too
    **SPEC,
)
def flight_delay_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    mlflow_tracking: MLflowResource,
    lake_store: StoreResource,
) -> dg.MaterializeResult:
    """A gradient-boosted classifier of `is_delayed`, trained on the newest training set with its
    newest days held out, logged to MLflow and registered as the `challenger`."""
    store = lake_store.store()
    path, digest, location = _latest_snapshot(context.instance)
    frame = training_set.read_snapshot(store, path)
    holdout_days = model.holdout_days_for(frame, config.holdout_days)
    trained = model.train(frame, holdout_days=holdout_days, seed=config.seed)
    _, holdout = model.time_split(frame.filter(pl.col(ft.LABEL).is_not_null()), holdout_days)
    first_day, last_day = frame["flight_date"].min(), frame["flight_date"].max()
    tags = {
        "dagster.run_id": context.run.run_id,
        "dagster.asset_key": MODEL.to_user_string(),
        "dagster.partition_window": f"{first_day}..{last_day}",
        registry.TAG_TRAINING_CUTOFF: str(trained.cutoff),
        "holdout_first": str(trained.holdout_first),
        "holdout_last": str(trained.holdout_last),
        "threshold": str(trained.threshold),
        "code_version": code_version(),
        "training_set.data_version": digest,
        "training_set.location": location,
    }
    try:
        logged = mlflow_tracking.registry().log_training(
            pipeline=trained.pipeline,
            input_example=model.to_pandas_features(frame.head(5), trained.feature_columns),
            params={**trained.params, "holdout_days": holdout_days, "seed": config.seed},
            metrics=trained.metrics,
            plots=model.plots(trained, holdout),
            dataset={
                "name": "flight_features",
                "digest": digest,
                "source": location,
                "rows": frame.height,
                "first_day": str(first_day),
                "last_day": str(last_day),
            },
            tags=tags,
            pip_requirements=PIP_REQUIREMENTS,
        )
    except registry.RegistryError as e:
        raise dg.Failure(description=f"MLflow registry unavailable, no alias moved: {e}") from e
    ui = mlflow_tracking.ui_url
    return dg.MaterializeResult(
        metadata={
            "mlflow_run": dg.MetadataValue.url(registry.run_url(ui, logged.experiment_id, logged.run_id)),
            "model_version": dg.MetadataValue.url(registry.model_version_url(ui, logged.version)),
            "version": int(logged.version),
            "training_cutoff": str(trained.cutoff),
            "holdout": f"{trained.holdout_first}..{trained.holdout_last}",
            **{k: float(v) for k, v in trained.metrics.items()},
            "training_set": location,
            "training_set_sha256": digest,
            "training_set_last_day": str(last_day),
        }
    )


def _score(models: registry.ModelRegistry, version: int, rows: pl.DataFrame) -> float | None:
    return promotion.holdout_roc_auc(models.load_model(version), rows) if rows.height else None


def _checks_passed(instance: dg.DagsterInstance, asset: dg.AssetKey) -> bool:
    key = dg.AssetCheckKey(asset, "contract")
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key]).get(key)
    return record is not None and record.status.value == "SUCCEEDED"


@dg.asset(key=CHAMPION, deps=[MODEL], kinds={"mlflow"}, automation_condition=on_upstream_change(), **SPEC)
def champion_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    mlflow_tracking: MLflowResource,
    lake_store: StoreResource,
) -> dg.MaterializeResult:
    """Which registered model version scores new days. The challenger becomes champion only if its
    training data passed its checks and it beats the champion by a margin on recent days neither
    trained on; every promotion, refusal or rollback is recorded here with its reason."""
    models, store = mlflow_tracking.registry(), lake_store.store()
    try:
        current = models.model_version_info("champion")
        if context.run.job_name == "rollback_champion" and not config.rollback_to:
            raise dg.Failure(description="Set rollback_to (in the launchpad) to the model version to roll back to.")
        if config.rollback_to:
            target = models.model_version_info(str(config.rollback_to))
            if target is None:
                raise dg.Failure(description=f"No model version {config.rollback_to} to roll back to.")
            models.set_alias("champion", target.version)
            decision = dict(
                decision="rollback",
                reason=f"rolled back from version {current.version if current else None} to {target.version}",
                champion_version=int(target.version),
                training_cutoff=target.training_cutoff,
            )
            snapshot = target.tags.get("training_set.data_version")
        else:
            challenger = models.model_version_info("challenger")
            if challenger is None:
                raise dg.Failure(description="No challenger registered: train flight_delay_model first.")
            first = dt.date.fromisoformat(challenger.tags["holdout_first"])
            last = dt.date.fromisoformat(challenger.tags["holdout_last"])
            rows = _labelled_days(store, first, last)
            challenger_score = _score(models, challenger.version, rows)
            champion_score = _score(models, current.version, rows) if current else None
            promote, reason = astuple(
                promotion.gate(
                    challenger_version=challenger.version,
                    champion_version=current.version if current else None,
                    challenger_score=challenger_score,
                    champion_score=champion_score,
                    training_set_passed=_checks_passed(context.instance, TRAINING_SET),
                    margin=config.margin,
                )
            )
            if promote:
                models.set_alias("champion", challenger.version)
            winner = challenger if promote else current
            decision = dict(
                decision="promoted" if promote else "refused",
                reason=reason,
                challenger_version=int(challenger.version),
                challenger_roc_auc=challenger_score,
                champion_roc_auc=champion_score,
                evaluated_days=f"{first}..{last}",
                evaluated_flights=rows.height,
                champion_version=int(winner.version) if winner else None,
                training_cutoff=winner.training_cutoff if winner else None,
            )
            snapshot = challenger.tags.get("training_set.data_version") if promote else None
    except registry.RegistryError as e:
        raise dg.Failure(description=f"MLflow registry unavailable, no alias moved: {e}") from e
    if snapshot:
        training_set.mark_reference(store, lake_layout.snapshot_path(snapshot))
    context.log.info("champion: %s", decision)
    version = decision.get("champion_version")
    metadata = {k: str(v) if isinstance(v, dt.date) else v for k, v in decision.items() if v is not None}
    if version:
        metadata["model_version_link"] = dg.MetadataValue.url(
            registry.model_version_url(mlflow_tracking.ui_url, version)
        )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=PREDICTIONS,
    deps=[FEATURES, CHAMPION],
    # A day is scored when its features are built. A new champion rescores nothing, but days
    # whose features came while there was no champion yet are scored as soon as one exists.
    automation_condition=on_upstream_change(ignore=(CHAMPION,)),
    pool=pool_for(PREDICTIONS),
    **DAILY,
)
def flight_predictions(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    mlflow_tracking: MLflowResource,
    lake_store: StoreResource,
) -> dg.MaterializeResult:
    """The champion's probability that each flight arrives more than 15 minutes late, made at
    `predicted_at`, one row per flight and model version. Only days after the model's training
    cut-off are scored, and a day scored once is never rescored by a later champion."""
    first, last = day_range(context)
    models = mlflow_tracking.registry()
    try:
        info = models.model_version_info("champion")
        if info is None:
            raise dg.Failure(description="No champion yet: train and promote a model first.")
        pipeline = models.load_model("champion")
    except registry.RegistryError as e:
        raise dg.Failure(description=f"MLflow registry unavailable: {e}") from e
    version, threshold = int(info.version), float(info.tags.get("threshold", 0.5))
    store = lake_store.store()
    expected = list(pipeline.feature_names_in_)
    mismatch = model.signature_mismatch(expected, [*ft.NUMERIC_FEATURES, *ft.CATEGORICAL_FEATURES])
    if mismatch["missing"] or mismatch["unexpected"]:
        raise dg.Failure(
            description=f"Model version {version} does not fit the features: {mismatch}",
            metadata={"missing": mismatch["missing"], "unexpected": mismatch["unexpected"]},
        )
    with warehouse.connect() as conn:
        todo, skipped = pr.days_to_score(conn, first, last, version, info.training_cutoff)
        rows = read_days(conn, ft.TABLE, "flight_date", first, last).filter(pl.col("flight_date").is_in(todo))
        scored = pr.score(pipeline, rows, version, threshold, dt.datetime.now(dt.UTC))
        pr.write_predictions(conn, scored, todo, version)
        published = read_days(conn, pr.PREDICTIONS, "flight_date", first, last)
        snapshot = snapshot_metadata(conn)
    lake.publish_days(store, "predictions", published, days_between(first, last), "flight_date")
    per_day = dict(scored.group_by("flight_date").len().iter_rows())
    add_daily_metadata(
        context,
        {
            **{day: {"dagster/row_count": int(per_day.get(day, 0)), "scored_by_version": version} for day in todo},
            **{day: {"left_as_it_was": why} for day, why in skipped.items()},
        },
    )
    add_table_schema(context, last, scored)
    return dg.MaterializeResult(
        metadata={
            "scored_rows": scored.height,  # each day's own count is on its partition
            "model_version": version,
            "scored_days": len(todo),
            "days_left_as_they_were": len(skipped),
            "mean_probability": float(scored["probability"].mean()) if scored.height else None,
            **snapshot,
        }
    )


REALIZED_AUC_BOUND = 0.65


@dg.asset(
    key=PERFORMANCE,
    deps=[PREDICTIONS, FCT_FLIGHTS],
    automation_condition=on_upstream_change(),
    check_specs=[
        dg.AssetCheckSpec(
            "realized_auc_7d",
            asset=PERFORMANCE,
            blocking=False,
            description=f"ROC AUC of the last 7 days' predictions, once landed, is at least {REALIZED_AUC_BOUND}.",
        ),
    ],
    pool=pool_for(PERFORMANCE),
    **DAILY,
)
def model_performance(context: dg.AssetExecutionContext, warehouse: WarehouseResource, lake_store: StoreResource):
    """How good the predictions turned out: per day and model version, realized ROC AUC, PR AUC,
    Brier score and calibration (mean predicted probability next to the observed delay rate),
    from out-of-sample predictions of flights that have landed."""
    first, last = day_range(context)
    with warehouse.connect() as conn:
        frame = pr.compute_performance(conn, first, last)
        auc_7d = pr.realized_auc(conn, last)
        snapshot = snapshot_metadata(conn)
    lake.publish_days(lake_store.store(), "model_performance", frame, days_between(first, last), "flight_date")
    add_daily_metadata(
        context,
        {
            day: {"dagster/row_count": rows.height, "by_model_version": dg.MetadataValue.json(json_rows(rows))}
            for (day,), rows in frame.group_by("flight_date")
        },
    )
    add_table_schema(context, last, frame)
    yield dg.MaterializeResult(metadata={"rows": frame.height, **snapshot})
    yield dg.AssetCheckResult(
        asset_key=PERFORMANCE,
        check_name="realized_auc_7d",
        passed=auc_7d is None or auc_7d >= REALIZED_AUC_BOUND,
        severity=dg.AssetCheckSeverity.WARN,
        description="not enough landed predictions yet"
        if auc_7d is None
        else f"realized ROC AUC {auc_7d:.3f} over the 7 days ending {last} (bound {REALIZED_AUC_BOUND})",
        metadata={"realized_auc_7d": auc_7d, "week_ending": str(last)},
    )
