"""Lets a DuckDB connection read the lake wherever it lives: a local folder, or S3 via httpfs.

The httpfs extension comes from the ``duckdb-extension-httpfs`` package, so this
works without internet. Credentials and endpoint come from the usual AWS_* variables.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

import duckdb

from ml_platform.lib.storage import is_s3


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def configure_lake_access(conn: duckdb.DuckDBPyConnection, lake_url: str) -> None:
    """Load httpfs and an S3 secret for an ``s3://`` lake; nothing to do for a folder."""
    if not is_s3(lake_url):
        return
    import duckdb_extensions

    duckdb_extensions.import_extension("httpfs")
    conn.execute("LOAD httpfs")
    options = {
        "KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID"),
        "SECRET": os.environ.get("AWS_SECRET_ACCESS_KEY"),
        "SESSION_TOKEN": os.environ.get("AWS_SESSION_TOKEN"),
        "REGION": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint)
        options["ENDPOINT"] = parsed.netloc or parsed.path
        options["URL_STYLE"] = "path"
        options["USE_SSL"] = "true" if parsed.scheme == "https" else "false"
    pairs = ", ".join(
        f"{k} {v if k == 'USE_SSL' else _sql_literal(v)}" for k, v in options.items() if v
    )
    conn.execute(f"CREATE OR REPLACE TEMPORARY SECRET ml_platform_lake (TYPE s3, {pairs})")
