"""The warehouse connection and the one rule for SQL text: every identifier that reaches SQL is validated.

Values always go as parameters (``$name``). The few things a parameter can not carry are
built here only: a validated identifier (``ident``, ``table_name``), a raw column name of a
delivered file, double-quoted (``quoted``), or a string literal (``sql_string``).

The lake is read from a local folder or S3 (httpfs from the ``duckdb-extension-httpfs``
package, so no download at run time); credentials and endpoint come from the AWS_* variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import duckdb

from ml_platform.io.store import is_s3

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def ident(name: str) -> str:
    """``name`` if it is a safe SQL identifier (lower-case letters, digits, ``_``), else ValueError."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not an allowed identifier (must match {IDENTIFIER.pattern})")
    return name


def table_name(name: str) -> str:
    """A ``schema.table`` or ``table`` name with every part validated."""
    return ".".join(ident(part) for part in name.split("."))


def sql_string(value: str) -> str:
    """A SQL string literal (quotes doubled) for the few places a parameter can not go."""
    return "'" + value.replace("'", "''") + "'"


def quoted(name: str) -> str:
    """Any column name as a double-quoted SQL identifier (for raw names not yet validated)."""
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN ... COMMIT; on any error ROLLBACK, so the previous rows stay as they were."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        try:
            conn.execute("ROLLBACK")
        except duckdb.Error:
            pass  # a failed COMMIT has already ended the transaction
        raise


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
    pairs = ", ".join(f"{k} {v if k == 'USE_SSL' else sql_string(v)}" for k, v in options.items() if v)
    conn.execute(f"CREATE OR REPLACE TEMPORARY SECRET ml_platform_lake (TYPE s3, {pairs})")
