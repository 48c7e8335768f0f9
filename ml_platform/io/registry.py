"""The flight-delay model in MLflow: log a training run, register it, move aliases, load it back.

Everything goes through one tracking URI: the MLflow server on 127.0.0.1 (embedded
profile) or the production server. The server alone touches its SQLite/Postgres
backend, so several runs may log at once. Public names: experiment ``flight-delay``,
registered model ``flight_delay_classifier``, aliases ``challenger`` and ``champion``.

Models are saved with the sklearn flavour in the ``skops`` format with a short,
reviewed list of trusted types (``TRUSTED_SKOPS_TYPES``), and only versions this
platform registered (tag ``ml_platform.registered_by=ml-platform``) are ever loaded.
See docs/registry.md for why.

No Dagster imports: the Dagster assets call these functions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from ml_platform.faults import kill_point

EXPERIMENT = "flight-delay"
MODEL_NAME = "flight_delay_classifier"
CHALLENGER = "challenger"
CHAMPION = "champion"

TAG_REGISTERED_BY = "ml_platform.registered_by"
REGISTERED_BY = "ml-platform"
TAG_TRAINING_CUTOFF = "ml_platform.training_cutoff"
TAG_DATASET_SHA256 = "ml_platform.dataset_sha256"
TAG_HOME = "ml_platform.home"  # on the experiment: the data home this registry belongs to

# Types skops refuses by default that this platform's pipelines need, each reviewed:
# - TreePredictor: the fitted trees of HistGradientBoosting* (skops warns that a crafted
#   file can hold out-of-range node indices; our files come only from our own training);
# - functools.partial + check_array: HistGradientBoosting* with categorical_features
#   builds a FunctionTransformer(partial(check_array, ...)) internally;
# - numpy.dtype: the dtype an encoder is told to output (a plain data type, no code).
# A pipeline needing anything else fails when it is logged (not when it is loaded).
TRUSTED_SKOPS_TYPES = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "functools.partial",
    "sklearn.utils.validation.check_array",
    "numpy.dtype",
)

HEALTH_TIMEOUT_SECONDS = 5.0
MAX_DATASET_DIGEST = 36  # MLflow's limit (datasets.digest is VARCHAR(36))

# mlflow's fluent API keeps the tracking URI in a process global; only log_model needs it.
_FLUENT_LOCK = threading.Lock()


class RegistryError(RuntimeError):
    """The MLflow server could not be reached, answered an error, or a model may not be loaded."""


@dataclass(frozen=True)
class LoggedModel:
    run_id: str
    experiment_id: str
    model_uri: str  # models:/m-<id>, the logged model itself
    version: int  # of flight_delay_classifier
    run_url_path: str  # "#/experiments/<id>/runs/<run_id>", relative to the UI's base
    version_url_path: str  # "#/models/flight_delay_classifier/versions/<v>"


@dataclass(frozen=True)
class VersionInfo:
    version: int
    run_id: str
    experiment_id: str
    training_cutoff: dt.date | None
    source: str
    aliases: tuple[str, ...]
    tags: dict[str, str]
    metrics: dict[str, float]


# --------------------------------------------------------------------------- helpers


def _check_reachable(uri: str) -> None:
    """Fail fast (seconds, not MLflow's minutes of retries) when an HTTP server does not answer."""
    if urlparse(uri).scheme not in ("http", "https"):
        return
    health = f"{uri.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(health, timeout=HEALTH_TIMEOUT_SECONDS) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except urllib.error.HTTPError as e:
        problem = f"HTTP {e.code}"
    except (urllib.error.URLError, OSError) as e:
        problem = str(getattr(e, "reason", e))
    raise RegistryError(f"MLflow server at {uri} is not reachable ({health}: {problem})")


@contextmanager
def _errors(uri: str, what: str) -> Iterator[None]:
    """Turn MLflow's and the network's exceptions into a RegistryError naming the URI and the step."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except RegistryError:
        raise
    except (MlflowException, OSError, ValueError) as e:
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RegistryError(f"MLflow at {uri}: {what} failed: {first_line}") from e


def _is_missing(error: Exception) -> bool:
    from mlflow.exceptions import MlflowException

    return isinstance(error, MlflowException) and error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


@contextmanager
def _fluent_tracking_uri(uri: str) -> Iterator[None]:
    """Point mlflow's fluent API at ``uri`` for the block, then put everything back.

    ``mlflow.set_tracking_uri(None)`` would also delete ``MLFLOW_TRACKING_URI`` from the
    environment, so the environment is restored by hand. Serialised by a lock: the URI
    is process-wide, and another thread must not log to whatever it was meanwhile.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with _FLUENT_LOCK:
        saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        saved_tracking, saved_registry = tracking_utils._tracking_uri, registry_utils._registry_uri
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(saved_tracking)
            registry_utils._registry_uri = saved_registry
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _version_and_alias(alias_or_version: str | int) -> tuple[str | None, str | None]:
    text = str(alias_or_version)
    return (text, None) if text.isdigit() else (None, text)


def _get_version(client, alias_or_version: str | int):
    """The ModelVersion, or None when the model, the version or the alias does not exist."""
    version, alias = _version_and_alias(alias_or_version)
    try:
        if alias is not None:
            # get_model_version_by_alias answers an unknown alias with INVALID_PARAMETER_VALUE,
            # not RESOURCE_DOES_NOT_EXIST: read the model's alias table instead.
            version = client.get_registered_model(MODEL_NAME).aliases.get(alias)
            if version is None:
                return None
        return client.get_model_version(MODEL_NAME, str(version))
    except Exception as e:
        if _is_missing(e):
            return None
        raise


def _as_tag(value: Any) -> str:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, sort_keys=True)


def _cutoff(tags: Mapping[str, str]) -> dt.date | None:
    value = tags.get(TAG_TRAINING_CUTOFF)
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _source_uri(source: str) -> str:
    """The lake location as a URI MLflow can type: a local path becomes file://, s3:// stays."""
    if urlparse(source).scheme in ("", "file") and not source.startswith("file:"):
        return Path(source).absolute().as_uri()
    return source


def _training_dataset(dataset: Mapping[str, Any]):
    """An MLflow dataset carrying only metadata (name, digest, lake URI, profile): the data is never read."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    missing = {"name", "digest", "source"} - set(dataset)
    if missing:
        raise ValueError(f"dataset lacks {sorted(missing)}; expected name, digest, source, rows, first_day, last_day")
    digest = str(dataset["digest"])
    profile = {
        "num_rows": dataset.get("rows"),
        "first_day": _as_tag(dataset["first_day"]) if dataset.get("first_day") else None,
        "last_day": _as_tag(dataset["last_day"]) if dataset.get("last_day") else None,
        "sha256": digest,
    }

    class _Snapshot(MetaDataset):
        @property
        def profile(self) -> dict[str, Any]:
            return profile

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(profile)}

    with warnings.catch_warnings():  # "can be interpreted in multiple ways: Local..., Local..."
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(_source_uri(str(dataset["source"])))
    # A sha256 is 64 characters; MLflow keeps 36. Its first 16 also name the snapshot file.
    short = digest if len(digest) <= MAX_DATASET_DIGEST else digest[:16]
    return _Snapshot(source=source, name=str(dataset["name"]), digest=short)


# --------------------------------------------------------------------------- URLs


def run_url(ui_base: str, experiment_id: str, run_id: str) -> str:
    return f"{ui_base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def model_version_url(ui_base: str, version: int | str) -> str:
    return f"{ui_base.rstrip('/')}/#/models/{MODEL_NAME}/versions/{version}"


# --------------------------------------------------------------------------- API


class ModelRegistry:
    """``flight_delay_classifier`` in the MLflow registry at ``tracking_uri``, through one client.

    The server is probed once (a few seconds, not MLflow's minutes of retries) on first use.
    With ``home`` set, the registry must belong to that data home: the experiment carries the
    tag ``ml_platform.home``, and a registry whose experiment names another home is refused
    (nothing is logged to it, nothing loaded from it).
    """

    def __init__(self, tracking_uri: str, home: str | None = None):
        self.tracking_uri = tracking_uri
        self.home = home
        self._mlflow_client = None
        self._home_checked = False

    def _client(self):
        if self._mlflow_client is None:
            import mlflow

            _check_reachable(self.tracking_uri)
            self._mlflow_client = mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        if self.home and not self._home_checked:
            self._check_home(self._mlflow_client)
        return self._mlflow_client

    def _check_home(self, client) -> None:
        """RegistryError when the experiment belongs to another data home; tag it when it has none."""
        with _errors(self.tracking_uri, f"reading the data home of experiment {EXPERIMENT!r}"):
            experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is not None:
            owner = experiment.tags.get(TAG_HOME)
            if owner and owner != self.home:
                raise RegistryError(
                    f"MLflow at {self.tracking_uri} is the registry of the data home {owner}, not of {self.home}: "
                    "nothing is logged to or loaded from it. Point MLFLOW_TRACKING_URI at this home's own "
                    "server, or unset it to use this home's embedded store."
                )
            if not owner:
                with _errors(self.tracking_uri, f"tagging experiment {EXPERIMENT!r} with its data home"):
                    client.set_experiment_tag(experiment.experiment_id, TAG_HOME, self.home)
        self._home_checked = True

    def ensure_experiment(self, artifact_location: str | None = None) -> str:
        """The id of the ``flight-delay`` experiment, created (or restored from the bin) if needed.

        ``artifact_location`` only matters at creation; with a server, leave it None so the
        server's ``--artifacts-destination`` is used; with a ``sqlite:///`` store used directly,
        None means the ``artifacts`` folder beside the store file.
        """
        uri, client = self.tracking_uri, self._client()
        if artifact_location is None and uri.startswith("sqlite:///"):
            # No server to say where artifacts go: next to the store, not in the working directory.
            artifact_location = (Path(uri[len("sqlite:///") :]).parent / "artifacts").as_uri()
        with _errors(uri, f"finding or creating experiment {EXPERIMENT!r}"):
            experiment = client.get_experiment_by_name(EXPERIMENT)
            if experiment is None:
                try:
                    tags = {TAG_HOME: self.home} if self.home else None
                    return client.create_experiment(EXPERIMENT, artifact_location=artifact_location, tags=tags)
                except Exception:  # another process may have created it first
                    experiment = client.get_experiment_by_name(EXPERIMENT)
                    if experiment is None:
                        raise
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment.experiment_id)
            return experiment.experiment_id

    def log_training(
        self,
        *,
        pipeline,
        input_example: pd.DataFrame,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        plots: Mapping[str, bytes],
        dataset: Mapping[str, Any],
        tags: Mapping[str, Any],
        pip_requirements: list[str],
    ) -> LoggedModel:
        """Log one training as a run of ``flight-delay``, register it, and make it the ``challenger``.

        ``dataset``: {"name", "digest", "source" (lake URI), "rows", "first_day", "last_day"},
        logged as the run's training input without reading the data. ``tags`` (Dagster run
        id, asset key, partitions, code version, upstream data versions, ...) go on the run,
        the logged model and the model version; ``ml_platform.training_cutoff`` defaults to
        the dataset's last day. Nothing moves the ``challenger`` alias unless every step
        succeeded (and never back to an older version); a run that failed half-way is marked
        FAILED.
        """
        import mlflow
        import mlflow.sklearn
        from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
        from mlflow.models import infer_signature
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        for name in plots:
            if not name or "/" in name or "\\" in name or name.startswith("."):
                raise ValueError(f"plot name {name!r} must be a plain file name")
        all_tags = {str(k): _as_tag(v) for k, v in tags.items() if v is not None}
        if TAG_TRAINING_CUTOFF not in all_tags and dataset.get("last_day"):
            all_tags[TAG_TRAINING_CUTOFF] = _as_tag(dataset["last_day"])
        if TAG_TRAINING_CUTOFF in all_tags:
            dt.date.fromisoformat(all_tags[TAG_TRAINING_CUTOFF][:10])  # ValueError when not a date
        all_tags[TAG_DATASET_SHA256] = str(dataset.get("digest", ""))
        all_tags[TAG_REGISTERED_BY] = REGISTERED_BY
        snapshot = _training_dataset(dataset)
        signature = infer_signature(input_example, pipeline.predict_proba(input_example))

        uri, client = self.tracking_uri, self._client()
        experiment_id = self.ensure_experiment()
        cutoff = all_tags.get(TAG_TRAINING_CUTOFF, "")
        with _errors(uri, f"creating a run in experiment {EXPERIMENT!r}"):
            run = client.create_run(experiment_id, run_name=f"train-through-{cutoff[:10]}" if cutoff else None)
        run_id = run.info.run_id
        finished = False
        try:
            with _errors(uri, f"logging params, metrics and tags of run {run_id}"):
                now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
                client.log_batch(
                    run_id,
                    metrics=[Metric(str(k), float(v), now, 0) for k, v in metrics.items()],
                    params=[Param(str(k), _as_tag(v)) for k, v in params.items()],
                    tags=[RunTag(k, v) for k, v in all_tags.items()],
                )
            kill_point("training.logging")
            if plots:
                with _errors(uri, f"uploading plots of run {run_id}"), tempfile.TemporaryDirectory() as tmp:
                    for name, data in plots.items():
                        (Path(tmp) / (name if "." in name else f"{name}.png")).write_bytes(data)
                    client.log_artifacts(run_id, tmp, "plots")
            with _errors(uri, f"logging the training dataset of run {run_id}"):
                client.log_inputs(
                    run_id,
                    datasets=[
                        DatasetInput(snapshot._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, "training")])
                    ],
                )
            with _errors(uri, f"logging and registering the model of run {run_id}"), _fluent_tracking_uri(uri):
                with mlflow.start_run(run_id=run_id, log_system_metrics=False):
                    info = mlflow.sklearn.log_model(
                        pipeline,
                        name="model",
                        serialization_format="skops",
                        skops_trusted_types=list(TRUSTED_SKOPS_TYPES),
                        signature=signature,
                        input_example=input_example,
                        pip_requirements=pip_requirements,
                        pyfunc_predict_fn="predict_proba",
                        registered_model_name=MODEL_NAME,
                        tags=all_tags,  # on the logged model and, in the same call, the new version
                    )
                finished = True  # start_run's exit marked the run FINISHED
        finally:
            if not finished:
                with contextlib.suppress(Exception):  # the original error is the one to report
                    client.set_terminated(run_id, "FAILED")
        version = int(info.registered_model_version)
        kill_point("registry.alias")
        # The challenger is the newest training: a slower concurrent training that registered
        # an older version must not take the alias back.
        with _errors(uri, f"reading the aliases of {MODEL_NAME}"):
            current = client.get_registered_model(MODEL_NAME).aliases.get(CHALLENGER)
        if current is None or int(current) < version:
            self.set_alias(CHALLENGER, version)
        return LoggedModel(
            run_id=run_id,
            experiment_id=experiment_id,
            model_uri=info.model_uri,
            version=version,
            run_url_path=f"#/experiments/{experiment_id}/runs/{run_id}",
            version_url_path=f"#/models/{MODEL_NAME}/versions/{version}",
        )

    def set_alias(self, alias: str, version: int | str) -> None:
        """Point ``alias`` at ``version`` of flight_delay_classifier; only versions this platform registered."""
        uri, client = self.tracking_uri, self._client()
        with _errors(uri, f"setting alias {alias!r} to version {version} of {MODEL_NAME}"):
            mv = client.get_model_version(MODEL_NAME, str(version))
            if mv.tags.get(TAG_REGISTERED_BY) != REGISTERED_BY:
                raise RegistryError(
                    f"MLflow at {uri}: version {version} of {MODEL_NAME} was not registered by this platform "
                    f"(tag {TAG_REGISTERED_BY} is {mv.tags.get(TAG_REGISTERED_BY)!r}); alias {alias!r} not moved"
                )
            client.set_registered_model_alias(MODEL_NAME, alias, str(version))

    def model_version_info(self, alias_or_version: str | int) -> VersionInfo | None:
        """What the registry knows about a version (by number or alias); None when there is no such alias/version."""
        uri, client = self.tracking_uri, self._client()
        with _errors(uri, f"reading {MODEL_NAME}@{alias_or_version}"):
            mv = _get_version(client, alias_or_version)
            if mv is None:
                return None
            run = client.get_run(mv.run_id) if mv.run_id else None
        run_tags = dict(run.data.tags) if run else {}
        tags = dict(mv.tags)
        return VersionInfo(
            version=int(mv.version),
            run_id=mv.run_id or "",
            experiment_id=run.info.experiment_id if run else "",
            training_cutoff=_cutoff(tags) or _cutoff(run_tags),
            source=mv.source,
            aliases=tuple(mv.aliases or ()),
            tags=tags,
            metrics=dict(run.data.metrics) if run else {},
        )

    def load_model(self, alias_or_version: str | int):
        """The fitted scikit-learn pipeline of a flight_delay_classifier version (by alias or number).

        Refused (RegistryError) unless the version carries ``ml_platform.registered_by=ml-platform``
        and was saved as skops with no trusted type beyond ``TRUSTED_SKOPS_TYPES``. The alias
        is resolved once: the files loaded are those of the version that was checked. To know
        which version that was, resolve it first with ``model_version_info`` and load by number.
        """
        import mlflow.artifacts
        import mlflow.sklearn
        import yaml

        uri, client = self.tracking_uri, self._client()
        label = f"{MODEL_NAME}@{alias_or_version}"
        with _errors(uri, f"resolving {label}"):
            mv = _get_version(client, alias_or_version)
        if mv is None:
            raise RegistryError(f"MLflow at {uri}: {label} does not exist")
        if mv.tags.get(TAG_REGISTERED_BY) != REGISTERED_BY:
            raise RegistryError(
                f"MLflow at {uri}: refusing to load version {mv.version} of {MODEL_NAME}: it lacks the tag "
                f"{TAG_REGISTERED_BY}={REGISTERED_BY}, so this platform did not register it "
                "(loading a model runs code from its files)"
            )
        with tempfile.TemporaryDirectory() as tmp, _errors(uri, f"loading version {mv.version} of {MODEL_NAME}"):
            # Not "models:/name/version": MLflow resolves that through the default tracking URI,
            # whatever tracking_uri/registry_uri say. Ask our server where the files are instead.
            location = client.get_model_version_download_uri(MODEL_NAME, mv.version)
            local = mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=tmp, tracking_uri=uri)
            flavor = (yaml.safe_load((Path(local) / "MLmodel").read_text()) or {}).get("flavors", {}).get("sklearn", {})
            fmt = flavor.get("serialization_format")
            extra = set(flavor.get("skops_trusted_types") or ()) - set(TRUSTED_SKOPS_TYPES)
            if fmt != "skops" or extra:
                raise RegistryError(
                    f"MLflow at {uri}: refusing to load version {mv.version} of {MODEL_NAME}: saved as {fmt!r}"
                    + (f" trusting {sorted(extra)}" if extra else "")
                    + "; only skops with the platform's reviewed trusted types is loaded"
                )
            return mlflow.sklearn.load_model(local)
