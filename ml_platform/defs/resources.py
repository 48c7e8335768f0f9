"""The platform's resources: where the lake and landing zone are and which services to call."""

from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource

from ml_platform.lib.lake_access import configure_lake_access
from ml_platform.lib.storage import Store, is_s3, open_store


class StoreResource(dg.ConfigurableResource):
    """A local folder or an ``s3://bucket/prefix``; S3 clients come from dagster-aws."""

    url: str

    def store(self) -> Store:
        # Region, endpoint and credentials come from the usual AWS_* variables.
        return open_store(self.url, s3_client=S3Resource().get_client() if is_s3(self.url) else None)


class OpsDatabaseResource(dg.ConfigurableResource):
    """The operational database (airlines, airports, planes), as a SQLAlchemy URL."""

    url: str


class WeatherApiResource(dg.ConfigurableResource):
    """The hourly weather HTTP API, called with timeouts and retries with backoff."""

    base_url: str
    timeout_seconds: float = 10.0
    retries: int = 4


@contextmanager
def warehouse_connection(warehouse: DuckDBResource, lake_url: str | None = None):
    """A short-lived warehouse connection (instants in UTC) that can also read the lake."""
    Path(warehouse.database).parent.mkdir(parents=True, exist_ok=True)
    with warehouse.get_connection() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        if lake_url:
            configure_lake_access(conn, lake_url)
        yield conn
