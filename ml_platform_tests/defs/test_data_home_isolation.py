"""Two data homes on one machine never write into each other's MLflow registry.

Seen before: a second home (ML_PLATFORM_HOME=<other>) trained through the Dagster API and its model
version landed in the FIRST home's registry, because the tracking URI defaulted to 127.0.0.1:5000
whatever the home was. Now each home's registry is its own (its own server here, or its own store
file), tagged with the home, and a registry of another home is refused with both homes named.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import mlflow
import pytest

from ml_platform.defs.lake.reference import raw_reference_tables
from ml_platform.defs.warehouse.assets import dim_airports, dim_carriers, dim_planes
from ml_platform.domain.features import TABLE
from ml_platform.io.registry import MODEL_NAME, ModelRegistry, RegistryError
from ml_platform.io.warehouse import connect_warehouse
from ml_platform.ops.bootstrap import replay, seed
from ml_platform.ops.services import choose_port
from ml_platform.pipeline.predictions import score
from ml_platform.settings import Settings
from ml_platform_tests.helpers import platform_defs, run_days
from ml_platform_tests.mlflow_server import _stop as stop_mlflow_server
from ml_platform_tests.mlflow_server import start_mlflow_server

pytestmark = pytest.mark.slow
LAST = "2013-01-07"


def _home_with_a_champion(tmp_path, monkeypatch, name: str, weather_api_url: str, trained_to: str):
    home = tmp_path / name
    monkeypatch.setenv("ML_PLATFORM_HOME", str(home))
    for var in ("ML_PLATFORM_LANDING_URL", "ML_PLATFORM_LAKE_URL", "ML_PLATFORM_OPS_DB_URL", "ML_PLATFORM_CATALOG_URL"):
        monkeypatch.delenv(var, raising=False)
    url, server = start_mlflow_server(home / "mlflow-server")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    settings = Settings.from_env()
    seed(settings)
    replay(settings, dt.date(2013, 1, 1), 7)
    with dg.instance_for_test() as instance:
        resources = platform_defs().resources
        assert run_days(instance, "ingest_landing", "2013-01-01", LAST).success
        assert dg.materialize(
            [*raw_reference_tables, dim_carriers, dim_airports, dim_planes], instance=instance, resources=resources
        ).success
        assert run_days(instance, "load_warehouse", "2013-01-01", LAST).success
        assert run_days(instance, "build_features", "2013-01-01", LAST).success
        config = {
            "ops": {
                "features__training_set": {"config": {"last_day": trained_to}},
                "models__flight_delay_model": {"config": {"holdout_days": 2}},
            }
        }
        result = (
            platform_defs()
            .resolve_job_def("train_and_promote")
            .execute_in_process(instance=instance, run_config=config)
        )
        assert result.success
        assert run_days(instance, "score_days", "2013-01-01", LAST).success
    return settings, url, server


def test_each_home_trains_into_its_own_registry_and_refuses_the_other(tmp_path, monkeypatch, weather_api_url, settings):
    monkeypatch.setenv("ML_PLATFORM_WEATHER_API_URL", weather_api_url)
    # Trained on different days, so the two homes' champions are different models.
    a, a_url, a_server = _home_with_a_champion(tmp_path, monkeypatch, "home-a", weather_api_url, trained_to=LAST)
    b, b_url, b_server = _home_with_a_champion(tmp_path, monkeypatch, "home-b", weather_api_url, "2013-01-05")
    try:
        for home, url in ((a, a_url), (b, b_url)):
            client = mlflow.MlflowClient(url)
            versions = client.search_model_versions(f"name='{MODEL_NAME}'")
            assert len(versions) == 1  # only this home's training
            assert versions[0].tags["training_set.location"].startswith(str(home.home))
            assert client.get_experiment_by_name("flight-delay").tags["ml_platform.home"] == str(home.home)
            champion = ModelRegistry(url, str(home.home)).model_version_info("champion")
            assert champion.tags["training_set.location"].startswith(str(home.home))

        # Each home's predictions of its last day are its own champion's, not the other home's.
        models = {h.home: ModelRegistry(u, str(h.home)).load_model("champion") for h, u in ((a, a_url), (b, b_url))}
        for home, other in ((a, b), (b, a)):
            with connect_warehouse(home.warehouse, read_only=True) as conn:
                rows = conn.execute(
                    f"SELECT * FROM {TABLE} WHERE flight_date = $d ORDER BY ALL", {"d": dt.date.fromisoformat(LAST)}
                ).pl()
                stored = conn.execute(
                    "SELECT probability FROM ml.predictions WHERE flight_date = $d ORDER BY carrier, flight, origin, "
                    "sched_dep_time",
                    {"d": dt.date.fromisoformat(LAST)},
                ).pl()["probability"]
            rows = rows.sort("carrier", "flight", "origin", "sched_dep_time")
            mine = score(models[home.home], rows, 1, 0.5, dt.datetime.now(dt.UTC))["probability"]
            theirs = score(models[other.home], rows, 1, 0.5, dt.datetime.now(dt.UTC))["probability"]
            assert stored.len() == rows.height > 700
            assert (stored - mine).abs().max() < 1e-12 and (stored - theirs).abs().max() > 1e-3

        with pytest.raises(RegistryError) as refused:  # home B pointed at home A's server
            ModelRegistry(a_url, str(b.home)).model_version_info("champion")
        assert str(a.home) in str(refused.value) and str(b.home) in str(refused.value)
        assert len(mlflow.MlflowClient(a_url).search_model_versions(f"name='{MODEL_NAME}'")) == 1  # nothing written
    finally:
        stop_mlflow_server(a_server)
        stop_mlflow_server(b_server)


def test_a_home_without_a_server_uses_its_own_store_file(tmp_path):
    settings = Settings.from_env({"ML_PLATFORM_HOME": str(tmp_path / "home")})
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'home' / 'mlflow' / 'mlflow.db'}"
    other = Settings.from_env({"ML_PLATFORM_HOME": str(tmp_path / "other")})
    assert other.mlflow_tracking_uri != settings.mlflow_tracking_uri


def test_a_port_another_home_holds_is_replaced_by_a_free_one():
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        chosen = choose_port(taken)
        assert chosen != taken and 1024 < chosen < 65536
