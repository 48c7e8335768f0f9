"""The platform's resources: the stores, the services it calls, and the knobs of its layers.

Each resource owns its client: a run (or a sensor tick) opens one S3 client, one weather API
session, one MLflow client, and uses it for every call. Values come from ``Settings`` when the
code location loads (``definitions.py``), never from the environment at import time.
"""

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr

from ml_platform.io.registry import ModelRegistry
from ml_platform.io.store import Store, is_s3, open_store
from ml_platform.io.warehouse import WarehouseConfig, WarehouseConfigError, commit_info, connect_warehouse
from ml_platform.io.weather_client import WeatherClient
from ml_platform.pipeline import retraining
from ml_platform.pipeline.drift import DRIFT_ERROR, DRIFT_WARN


class StoreResource(dg.ConfigurableResource):
    """A local folder or an ``s3://bucket/prefix``; the S3 client comes from dagster-aws (AWS_* variables)."""

    url: str
    _store: Store | None = PrivateAttr(default=None)

    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.url, s3_client=S3Resource().get_client() if is_s3(self.url) else None)
        return self._store


class LandingZoneResource(StoreResource):
    """The landing zone; a file is looked at once it has not changed for ``settle_seconds`` (a
    delivery still being written is not ingested half-way)."""

    settle_seconds: float = 2.0


class OpsDatabaseResource(dg.ConfigurableResource):
    """The operational database (airlines, airports, planes), as a SQLAlchemy URL."""

    url: str


class WeatherApiResource(dg.ConfigurableResource):
    """The hourly weather HTTP API, called with timeouts and retries with backoff."""

    base_url: str
    timeout_seconds: float = 10.0
    retries: int = 4
    _client: WeatherClient | None = PrivateAttr(default=None)

    def client(self) -> WeatherClient:
        if self._client is None:
            self._client = WeatherClient(self.base_url, timeout=self.timeout_seconds, retries=self.retries)
        return self._client


class MLflowResource(dg.ConfigurableResource):
    """The MLflow registry of this data home (``home``), and the address people open in links."""

    tracking_uri: str
    ui_url: str
    home: str = ""
    _registry: ModelRegistry | None = PrivateAttr(default=None)

    def registry(self) -> ModelRegistry:
        if self._registry is None:
            self._registry = ModelRegistry(self.tracking_uri, self.home or None)
        return self._registry


class OnlineStoreResource(dg.ConfigurableResource):
    """The online feature store: a Redis URL and this data home's key prefix."""

    url: str
    prefix: str
    ttl_seconds: int = 48 * 3600

    def store(self):
        from ml_platform.serving.online_store import OnlineStore, OnlineStoreSettings

        return OnlineStore(OnlineStoreSettings(self.url, self.prefix, self.ttl_seconds))


class FeatureSettings(dg.ConfigurableResource):
    """How far ahead predictions are made, and the drift thresholds (docs/drift.md)."""

    prediction_horizon_minutes: int
    drift_warn: float = DRIFT_WARN
    drift_error: float = DRIFT_ERROR


class RetrainPolicyConfig(dg.ConfigurableResource):
    """How many new labelled days trigger a retrain, and the wall-clock period of the weekly one."""

    new_days: int = retraining.DEFAULT_NEW_DAYS
    every_days: int = retraining.DEFAULT_EVERY_DAYS

    def policy(self) -> retraining.RetrainPolicy:
        return retraining.RetrainPolicy(self.new_days, dt.timedelta(days=self.every_days))


class WarehouseResource(dg.ConfigurableResource):
    """The DuckLake warehouse: its catalog (``sqlite:<file>`` embedded, ``postgres:<libpq string>`` in
    production), the folder or ``s3://`` prefix of its data files, and DuckDB's memory limit.

    A run checks it can reach the catalog (and S3) when it starts, so a wrong setting fails the run
    at once with a message naming it. Every commit a step makes records the Dagster run id in its
    DuckLake snapshot (``commit_extra_info``).
    """

    catalog_url: str
    data_url: str
    memory_limit: str = ""
    snapshot_retention_days: int = 7  # maintenance expires older snapshots: time travel reaches this far
    _run_id: str = PrivateAttr(default="")

    def config(self) -> WarehouseConfig:
        return WarehouseConfig(self.catalog_url, self.data_url, self.memory_limit)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run_id = context.run.run_id if context.run else ""
        try:
            connect_warehouse(self.config()).close()
        except WarehouseConfigError as e:
            raise dg.Failure(description=str(e)) from None

    @contextmanager
    def connect(self, lake_url: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection to the warehouse (instants in UTC) that can also read the lake at ``lake_url``."""
        try:
            conn = connect_warehouse(self.config(), lake_url=lake_url)
        except WarehouseConfigError as e:
            raise dg.Failure(description=str(e)) from None
        try:
            with commit_info(dagster_run_id=self._run_id):
                yield conn
        finally:
            conn.close()


@contextmanager
def warehouse_connection(warehouse: WarehouseResource, lake_url: str | None = None):
    """``warehouse.connect(lake_url)``: a short-lived warehouse connection that can also read the lake."""
    with warehouse.connect(lake_url) as conn:
        yield conn
