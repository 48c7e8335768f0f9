"""Point-in-time flight features, the training-set snapshot, and the checks that keep them honest."""

import datetime as dt

import dagster as dg

from ml_platform.defs.automation import on_upstream_change
from ml_platform.defs.checks import contract_result, contract_spec
from ml_platform.defs.keys import FCT_FLIGHTS, FEATURES, MODEL, STAGING_WEATHER, TRAINING_SET
from ml_platform.defs.metadata import (
    SNAPSHOT_KEY,
    add_daily_metadata,
    add_table_schema,
    column_schema,
    snapshot_metadata,
)
from ml_platform.defs.partitions import daily_partitions, day_range
from ml_platform.defs.pools import pool_for
from ml_platform.defs.resources import FeatureSettings, StoreResource, WarehouseResource
from ml_platform.domain import contracts
from ml_platform.domain.calendar import days_between
from ml_platform.io.store import Store
from ml_platform.io.warehouse import snapshot_read
from ml_platform.pipeline import features as ft
from ml_platform.pipeline import lake, training_set
from ml_platform.pipeline.drift import DRIFT_FEATURES, drift_report, severity
from ml_platform.pipeline.features.leakage import single_feature_auc_in_table
from ml_platform.pipeline.warehouse.common import parts_of_days, read_days, read_days_in_parts
from ml_platform.pipeline.warehouse.schema import table_columns

SPEC = dict(group_name="features", owners=["team:ml"])
POINT_IN_TIME = "point_in_time"
DRIFT = "feature_drift"


def _point_in_time_result(conn, first: dt.date, last: dt.date) -> dg.AssetCheckResult:
    """Nothing used was known after predicted_at, no post-departure column, no one-feature oracle."""
    violations = ft.point_in_time_violations(conn, first, last)
    forbidden = ft.forbidden_columns_present(table_columns(conn, ft.TABLE))
    auc = single_feature_auc_in_table(conn, first, last)
    leaks = {c: round(a, 3) for c, a in auc.items() if a > ft.LEAK_AUC}
    problems = [f"{n:,} rows use {c} after predicted_at" for c, n in violations.items() if n]
    if forbidden:
        problems.append(f"post-departure columns among the features: {', '.join(forbidden)}")
    if leaks:
        problems.append(f"a single feature separates the label (ROC AUC > {ft.LEAK_AUC}): {leaks}")
    top = dict(sorted(auc.items(), key=lambda kv: kv[1], reverse=True)[:5])
    return dg.AssetCheckResult(
        asset_key=FEATURES,
        check_name=POINT_IN_TIME,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems) or None,
        metadata={
            "rows_after_predicted_at": dg.MetadataValue.json(violations),
            "highest_single_feature_auc": dg.MetadataValue.json({k: round(v, 3) for k, v in top.items()}),
        },
    )


def _publish(conn, store: Store, first: dt.date, last: dt.date) -> None:
    """Every day of [first, last] as its own Parquet partition under published/, a few weeks at a time."""
    for start, end in parts_of_days(conn, ft.TABLE, "flight_date", first, last):
        frame = read_days(conn, ft.TABLE, "flight_date", start, end)
        lake.publish_days(store, "flight_features", frame, days_between(start, end), "flight_date")


def _drift_result(conn, store: Store, last: dt.date, settings: FeatureSettings) -> dg.AssetCheckResult:
    """PSI of the 7 days ending ``last`` against the snapshot the current model was trained on."""
    reference_path = training_set.reference_snapshot(store)
    if reference_path is None:
        return dg.AssetCheckResult(
            asset_key=FEATURES,
            check_name=DRIFT,
            passed=True,
            description="No training snapshot yet: nothing to compare with.",
        )
    reference = training_set.read_snapshot(store, reference_path)
    recent = read_days(conn, ft.TABLE, "flight_date", last - dt.timedelta(days=6), last)
    report = drift_report(
        reference, recent, ft.NUMERIC_FEATURES, ft.CATEGORICAL_FEATURES, score_features=DRIFT_FEATURES
    )
    level = severity(report.score, settings.drift_warn, settings.drift_error)
    return dg.AssetCheckResult(
        asset_key=FEATURES,
        check_name=DRIFT,
        passed=level == "ok",
        severity=dg.AssetCheckSeverity.ERROR if level == "error" else dg.AssetCheckSeverity.WARN,
        description=f"drift score {report.score:.3f} for the week ending {last} ({level}; "
        f"WARN at {settings.drift_warn}, ERROR at {settings.drift_error})",
        metadata={
            "score": report.score,
            "level": level,
            "week_ending": str(last),
            "reference": store.uri(reference_path),
            "largest_in_score": dg.MetadataValue.json({k: round(v, 4) for k, v in report.top}),
            "psi_by_feature": dg.MetadataValue.json({k: round(v, 4) for k, v in sorted(report.psi.items())}),
        },
    )


@dg.asset(
    key=FEATURES,
    deps=[
        dg.AssetDep(
            FCT_FLIGHTS,
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-ft.HISTORY_DAYS, allow_nonexistent_upstream_partitions=True
            ),
        ),
        dg.AssetDep(
            STAGING_WEATHER,
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-1, allow_nonexistent_upstream_partitions=True
            ),
        ),
    ],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"duckdb", "parquet"},
    pool=pool_for(FEATURES),
    automation_condition=on_upstream_change(),
    output_required=False,
    check_specs=[
        dg.AssetCheckSpec(
            POINT_IN_TIME,
            asset=FEATURES,
            blocking=True,
            description="No row used a source row known after its predicted_at, no "
            "post-departure column is a feature, no single feature has ROC AUC > 0.9.",
        ),
        contract_spec(FEATURES, contracts.FlightFeatures),
        dg.AssetCheckSpec(
            DRIFT,
            asset=FEATURES,
            blocking=False,
            description="PSI of the last 7 days against the model's training snapshot.",
        ),
    ],
    **SPEC,
)
def flight_features(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    lake_store: StoreResource,
    feature_settings: FeatureSettings,
):
    """Every scheduled flight as it looked `horizon` minutes before departure (`predicted_at`):
    calendar, route, plane, the latest weather report known then, the airport's state, and
    trailing delay rates, with the label `is_delayed`. A day is recomputed when any of the 29
    days before it change (its trailing windows), so corrections flow forward. Days failing a
    blocking check are neither published nor materialized, so nothing downstream uses them."""
    first, last = day_range(context)
    store = lake_store.store()
    with warehouse.connect(lake_store.url) as conn:
        result = ft.build_flight_features(
            conn, first, last, horizon_minutes=feature_settings.prediction_horizon_minutes
        )
        blocking = [
            _point_in_time_result(conn, first, last),
            contract_result(
                FEATURES, contracts.FlightFeatures, read_days_in_parts(conn, ft.TABLE, "flight_date", first, last)
            ),
        ]
        failed = [c.check_name for c in blocking if not c.passed]
        if not failed:  # days that fail a blocking check are neither published nor materialized
            _publish(conn, store, first, last)
            labelled = dict(
                conn.execute(
                    f"SELECT flight_date, count({ft.LABEL}) FROM {ft.TABLE} WHERE flight_date BETWEEN $first AND $last "
                    "GROUP BY ALL",
                    {"first": first, "last": last},
                ).fetchall()
            )
            add_daily_metadata(
                context,
                {
                    day: {
                        "dagster/row_count": n,
                        "labelled_rows": int(labelled.get(day, 0)),
                        "published": store.uri(f"published/flight_features/date={day}"),
                    }
                    for day, n in result.days.items()
                },
            )
            add_table_schema(context, last, read_days(conn, ft.TABLE, "flight_date", first, last, limit=0))
            yield dg.MaterializeResult(
                metadata={
                    "horizon_minutes": result.horizon_minutes,
                    "build_seconds": round(result.seconds, 2),
                    **snapshot_metadata(conn),
                }
            )
        yield from blocking
        yield _drift_result(conn, store, last, feature_settings)
    if failed:
        raise dg.Failure(
            description=f"Features of {first}..{last} not published: the {' and '.join(failed)} check failed "
            "(see the checks tab). Later days keep flowing; fix the cause and rebuild these days."
        )


class TrainingSetConfig(dg.Config):
    """The window of days to train on (inclusive); empty means every labelled day available."""

    first_day: str = ""
    last_day: str = ""


@dg.asset(
    key=TRAINING_SET,
    deps=[FEATURES],
    kinds={"parquet"},  # reads a committed snapshot of the features: no pool
    check_specs=[contract_spec(TRAINING_SET, contracts.FlightFeatures)],
    output_required=False,  # unchanged rows: nothing new, and nothing downstream retrains
    **SPEC,
)
def flight_training_set(
    context: dg.AssetExecutionContext,
    config: TrainingSetConfig,
    warehouse: WarehouseResource,
    lake_store: StoreResource,
):
    """The labelled flights of a window of days, frozen as one Parquet snapshot in the lake and
    named by its content hash. Its data version is that hash: training logs it as its dataset.
    When the newest model was trained on these very rows, nothing is materialized and the model
    does not retrain (a training that crashed or failed on them is tried again)."""
    store = lake_store.store()
    with warehouse.connect() as conn, snapshot_read(conn) as read_at:
        frame = training_set.select(conn, config.first_day or None, config.last_day or None)
    trained = context.instance.get_latest_materialization_event(MODEL)
    snapshot = training_set.write_snapshot(store, frame)
    trained_on = trained.asset_materialization.metadata.get("training_set_sha256") if trained else None
    if trained_on is not None and trained_on.value == snapshot.digest:
        context.log.info("training set unchanged (%s): no retrain", snapshot.digest[:16])
        yield contract_result(TRAINING_SET, contracts.FlightFeatures, frame)  # on the newest snapshot
        return
    context.log.info(
        "training set %s: %d rows, %s..%s", snapshot.digest[:16], snapshot.rows, snapshot.first_day, snapshot.last_day
    )
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(snapshot.digest),
        metadata={
            "dagster/row_count": snapshot.rows,
            "dagster/column_schema": column_schema(frame),
            "content_sha256": snapshot.digest,
            # the warehouse as it was read: SELECT ... FROM features.flight_features AT (VERSION => n)
            **({SNAPSHOT_KEY: read_at} if read_at is not None else {}),
            "first_day": str(snapshot.first_day),
            "last_day": str(snapshot.last_day),
            "delayed_share": round(snapshot.delayed_share, 4),
            "location": store.uri(snapshot.path),
        },
    )
    yield contract_result(TRAINING_SET, contracts.FlightFeatures, frame)
