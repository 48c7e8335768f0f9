"""The model the service scores with: the registered ``champion``, loaded once and swapped when the alias moves.

``RegistryChampion`` is the service's only contact with the model registry: it resolves
the alias and loads that version through ``ml_platform.io.registry`` (which refuses any
version this platform did not register, or that is not skops with the reviewed trusted
types). ``ChampionWatcher`` re-checks the alias every ``check_seconds`` in a background
thread and swaps the served model in one assignment: a request scores with the old or
the new model, never a mix. A failed check or load keeps the model being served and is
reported in ``/health``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)
DEFAULT_THRESHOLD = 0.5  # what flight_predictions uses when a version has no "threshold" tag


@dataclass(frozen=True)
class ServedModel:
    """A loaded pipeline and what the registry says about it."""

    version: int
    pipeline: object
    feature_columns: tuple[str, ...]
    threshold: float
    training_cutoff: dt.date | None
    loaded_at: dt.datetime


class RegistryChampion:
    """Resolve and load ``flight_delay_classifier@<alias>`` from the MLflow server at ``tracking_uri``."""

    def __init__(self, tracking_uri: str, alias: str = "champion", home: str | None = None) -> None:
        from ml_platform.io.registry import ModelRegistry

        self.tracking_uri = tracking_uri
        self.alias = alias
        self.registry = ModelRegistry(tracking_uri, home)

    def current_version(self) -> int | None:
        """The version the alias points at now (None: no such alias). Raises RegistryError."""
        info = self.registry.model_version_info(self.alias)
        return int(info.version) if info else None

    def load(self, version: int) -> ServedModel:
        """Load that version by number (so the files are those of the version that was checked)."""
        from ml_platform.io import registry

        info = self.registry.model_version_info(version)
        if info is None:
            raise registry.RegistryError(f"version {version} of {registry.MODEL_NAME} does not exist")
        pipeline = self.registry.load_model(version)
        return ServedModel(
            version=int(info.version),
            pipeline=pipeline,
            feature_columns=tuple(pipeline.feature_names_in_),
            threshold=float(info.tags.get("threshold", DEFAULT_THRESHOLD)),
            training_cutoff=info.training_cutoff,
            loaded_at=dt.datetime.now(dt.UTC),
        )


class ChampionWatcher:
    """Keeps ``model`` equal to the version the alias points at, checking every ``check_seconds``."""

    def __init__(self, source: RegistryChampion, *, check_seconds: float = 10.0) -> None:
        self.source = source
        self.check_seconds = check_seconds
        self.model: ServedModel | None = None
        self.last_error: str | None = None
        self.last_check: dt.datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> None:
        """Resolve the alias once; load and swap when it points elsewhere. Never raises."""
        try:
            version = self.source.current_version()
            if version is None:
                self.last_error = f"no version has the alias {self.source.alias!r} yet"
            elif self.model is None or self.model.version != version:
                loaded = self.source.load(version)
                previous, self.model = self.model, loaded  # one assignment: requests see old or new
                log.info("serving model version %s (was %s)", loaded.version, previous.version if previous else None)
                self.last_error = None
            else:
                self.last_error = None
        except Exception as e:  # noqa: BLE001 - a registry outage must not stop the service
            self.last_error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            log.warning(
                "champion check failed, keeping version %s: %s",
                self.model.version if self.model else None,
                self.last_error,
            )
        self.last_check = dt.datetime.now(dt.UTC)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.check_seconds):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
