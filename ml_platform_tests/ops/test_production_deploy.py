"""What the production profile deploys, read back as the tools read it:

* the Helm values for the official Dagster chart (deploy/helm/values.yaml): runs as Kubernetes Jobs
  (K8sRunLauncher), steps as Jobs (k8s_job_executor, through ML_PLATFORM_EXECUTOR=k8s), Dagster on
  an external Postgres with a psycopg2 URL, the platform's code as a user code deployment, its
  settings from Secrets, and no secret value in the file;
* the instance `up --profile production` writes (deploy/dagster.production.yaml): a Postgres
  instance Dagster loads, with its URL read from the environment and never written down;
* the code location's choice: Celery only when ML_PLATFORM_EXECUTOR says so, with the broker, the
  deployment's own queue and late acknowledgement, and values between steps on S3.
"""

from __future__ import annotations

import importlib.util
import tomllib

import pytest
import yaml

from ml_platform.ops import production
from ml_platform.settings import REPO_ROOT, Settings

VALUES = REPO_ROOT / "deploy" / "helm" / "values.yaml"
SECRET_VARIABLES = ("ML_PLATFORM_CATALOG_URL", "ML_PLATFORM_OPS_DB_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def _walk(node, path=()):
    """Every (path, value) leaf of a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, (*path, str(i)))
    else:
        yield path, node


def test_helm_runs_and_steps_are_kubernetes_jobs(values):
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"] == [{"name": "ml-platform-env"}]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["ML_PLATFORM_EXECUTOR"] == "k8s"  # the code location then picks k8s_job_executor
    assert not any(values[broker]["enabled"] for broker in ("rabbitmq", "redis", "flower"))


def test_helm_dagster_is_on_an_external_postgres_with_a_psycopg2_url(values):
    pg = values["postgresql"]
    assert pg["enabled"] is False and pg["postgresqlHost"] and pg["postgresqlDatabase"]
    assert pg["postgresqlScheme"] == "postgresql+psycopg2"
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"] == "dagster-postgresql-secret"


def test_helm_user_code_is_the_platforms_code_location_on_an_image_placeholder(values):
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert values["dagster-user-deployments"]["enabled"] is True
    module = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", module]
    assert deployment["image"]["repository"].startswith("<") and deployment["image"]["tag"].startswith("<")
    assert {"name": "ml-platform-env"} in deployment["envSecrets"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["ML_PLATFORM_LANDING_URL"].startswith("s3://") and env["ML_PLATFORM_LAKE_URL"].startswith("s3://")


def test_helm_holds_no_secret_value(values):
    leaves = list(_walk(values))
    assert not [p for p, _ in leaves if p[-1].lower() in ("postgresqlpassword", "password", "secretkey")]
    names = {v for p, v in leaves if p[-1] == "name"}
    assert not names & set(SECRET_VARIABLES)  # those come from the Secret ml-platform-env only
    assert not [v for _, v in leaves if isinstance(v, str) and "@" in v and "://" in v]  # user:password@host
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"


def test_the_k8s_executor_is_k8s_job_executor_or_a_clear_error():
    settings = Settings.from_env({"ML_PLATFORM_EXECUTOR": "k8s"})
    if importlib.util.find_spec("dagster_k8s") is None:
        with pytest.raises(ValueError, match=r"ML_PLATFORM_EXECUTOR=k8s needs dagster-k8s==0\.29\.27"):
            production.executor_for(settings)
    else:
        assert production.executor_for(settings).name == "k8s"


def test_the_production_instance_is_postgres_from_the_environment(postgres_url, tmp_path, monkeypatch):
    import dagster as dg
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv("ML_PLATFORM_DAGSTER_STORAGE_URL", postgres_url)
    monkeypatch.setenv("ML_PLATFORM_CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    settings = Settings.from_env({"ML_PLATFORM_HOME": str(tmp_path / "home"), "ML_PLATFORM_CELERY_QUEUE": "mlp_q1"})
    home = production.prepare_home(settings)
    text = (home / "dagster.yaml").read_text()
    assert production.TEMPLATE_HOME not in text and postgres_url not in text
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert instance.run_storage.has_run("no-such-run") is False  # the schema exists and answers
    worker = get_validated_config(str(home / "celery.yaml"))
    assert worker["broker"] == "amqp://guest:guest@127.0.0.1:5672//"  # read from the environment
    assert worker["config_source"] == production.celery_config(settings)["config_source"]
    assert "guest:guest" not in (home / "celery.yaml").read_text()


def test_the_code_location_uses_celery_only_when_told():
    assert production.executor_for(Settings.from_env({})).name == "in_process"
    settings = Settings.from_env(
        {
            "ML_PLATFORM_EXECUTOR": "celery",
            "ML_PLATFORM_CELERY_BROKER_URL": "amqp://u:p@rabbit:5672/ml",
            "ML_PLATFORM_CELERY_QUEUE": "ml_platform_prod",
        }
    )
    executor = production.executor_for(settings)
    assert executor.name == "celery"
    config = production.celery_config(settings)
    assert config["broker"] == "amqp://u:p@rabbit:5672/ml" and config["backend"] == "rpc://"
    source = config["config_source"]
    assert source["task_default_queue"] == "ml_platform_prod"  # the workers listen on it (-q)
    assert source["task_acks_late"] and source["worker_prefetch_multiplier"] == 1  # a lost step is redelivered
    with pytest.raises(ValueError, match="ML_PLATFORM_EXECUTOR must be one of in_process, celery, k8s"):
        Settings.from_env({"ML_PLATFORM_EXECUTOR": "multiprocess"})


@pytest.mark.parametrize(
    ("executor", "lake", "expected"),
    [
        ("celery", "s3://data/prod/lake", ("data", "prod/lake/dagster/io")),
        ("celery", "s3://data", ("data", "dagster/io")),
        ("celery", "/srv/lake", None),  # one machine: Dagster's files under the instance do
        ("in_process", "s3://data/prod/lake", None),  # nothing crosses a process
    ],
)
def test_values_between_steps_go_to_s3_when_steps_are_distributed(executor, lake, expected):
    resources = production.step_io_manager(
        Settings.from_env({"ML_PLATFORM_EXECUTOR": executor, "ML_PLATFORM_LAKE_URL": lake})
    )
    if expected is None:
        assert resources == {}
    else:
        manager = resources["io_manager"]
        assert type(manager).__name__ == "S3PickleIOManager"
        assert (manager.s3_bucket, manager.s3_prefix) == expected
