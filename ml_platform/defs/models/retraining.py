"""The retraining sensor: applies the retraining policy (pipeline/retraining.py) to what Dagster knows.

It waits until no run is queued or in progress, so a model never trains on half of a landed
batch; the reason for each retrain (or for waiting) is on the sensor's tick and on the run's
`ml_platform/retrain_reason` tag.
"""

import datetime as dt

import dagster as dg

from ml_platform.defs.features.assets import DRIFT
from ml_platform.defs.keys import CHAMPION, FEATURES, MODEL
from ml_platform.defs.resources import RetrainPolicyConfig
from ml_platform.pipeline import retraining

REASON_TAG = "ml_platform/retrain_reason"
BUSY = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _drift_error_after(instance: dg.DagsterInstance, timestamp: float) -> str | None:
    key = dg.AssetCheckKey(FEATURES, DRIFT)
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key]).get(key)
    if record is None or record.event is None or record.create_timestamp <= timestamp:
        return None
    evaluation = record.event.dagster_event.event_specific_data
    failed_error = not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    return evaluation.description if failed_error else None


def training_state(instance: dg.DagsterInstance, now: dt.datetime) -> tuple[retraining.TrainingState, int]:
    """The policy's inputs, and the storage id of the newest feature build (the run key)."""

    def newest(key: dg.AssetKey):
        records = instance.fetch_materializations(key, limit=1, ascending=False).records
        return records[0] if records else None

    features, trained, champion = newest(FEATURES), newest(MODEL), newest(CHAMPION)
    newest_features = features.storage_id if features else 0
    cutoff = champion and champion.asset_materialization.metadata.get("training_cutoff")
    last_day = trained and trained.asset_materialization.metadata.get("training_set_last_day")
    state = retraining.TrainingState(
        feature_days=frozenset(dt.date.fromisoformat(k) for k in instance.get_materialized_partitions(FEATURES)),
        champion_cutoff=dt.date.fromisoformat(cutoff.value) if cutoff else None,
        last_trained_day=dt.date.fromisoformat(last_day.value) if last_day else None,
        last_trained_at=dt.datetime.fromtimestamp(trained.timestamp, dt.UTC) if trained else None,
        features_rebuilt=trained is None or newest_features > trained.storage_id,
        drift_error=_drift_error_after(instance, trained.timestamp if trained else 0.0),
        now=now,
    )
    return state, newest_features


@dg.sensor(
    job_name="train_and_promote",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retrains when 7 new labelled days arrived, drift reached ERROR, or a week passed.",
)
def retraining_sensor(context: dg.SensorEvaluationContext, retrain_policy: RetrainPolicyConfig):
    busy = context.instance.get_run_records(dg.RunsFilter(statuses=BUSY), limit=1)
    if busy:
        return dg.SkipReason(f"waiting: run {busy[0].dagster_run.run_id[:8]} is queued or in progress")
    state, newest_features = training_state(context.instance, dt.datetime.now(dt.UTC))
    decision = retraining.decide(state, retrain_policy.policy())
    if not decision.retrain:
        return dg.SkipReason(decision.reason)
    context.log.info("retraining: %s", decision.reason)
    return dg.RunRequest(run_key=f"features@{newest_features}", tags={REASON_TAG: decision.reason[:1000]})
