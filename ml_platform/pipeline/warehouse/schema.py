"""Schema contracts: what the lake must deliver, and how warehouse tables follow new columns.

Two checks run before any write:

* ``check_raw_files``: every raw day file in the range has the required columns with
  the contract's types. A required column missing from one file would otherwise be
  read as NULL for that day (``union_by_name``) and, say, turn every flight of the
  day into a diverted one; a column of the wrong type means the producer changed.
* ``sync_columns``: a column the source now produces but the table lacks is added to
  the table (new raw flights columns arrive as ``VARCHAR extra_<name>``, so nothing
  is dropped); a column the table has but the source no longer produces, when it is
  required, or a column whose type changed incompatibly, raises ``SchemaChangeError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import duckdb

from ml_platform.io.warehouse import IDENTIFIER, ident, run_ddl, table_name

EXTRA_PREFIX = "extra_"
_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")


class SchemaChangeError(ValueError):
    """A source or table no longer fits its contract; ``column`` names the offending column."""

    def __init__(self, column: str, problem: str):
        self.column = column
        super().__init__(f"column {column!r}: {problem}")


def table_columns(conn: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """``{column: type}`` of a table of the current catalog, in order; empty if it does not exist."""
    schema, _, name = table_name(table).rpartition(".")
    rows = conn.execute(
        """
        SELECT column_name, data_type FROM information_schema.columns
        WHERE table_catalog = current_database() AND table_schema = $schema AND table_name = $name
        ORDER BY ordinal_position
        """,
        {"schema": schema or "main", "name": name},
    ).fetchall()
    return dict(rows)


def describe(conn: duckdb.DuckDBPyConnection, select_sql: str) -> dict[str, str]:
    """``{column: type}`` a parameter-free query would return."""
    return {row[0]: row[1] for row in conn.execute(f"DESCRIBE {select_sql}").fetchall()}


def compatible(source_type: str, target_type: str) -> bool:
    """Whether values of ``source_type`` fit a ``target_type`` column unchanged (same or wider)."""
    if source_type == target_type or source_type == '"NULL"':
        return True
    if source_type in _INTEGERS and target_type in _INTEGERS:
        return _INTEGERS.index(source_type) <= _INTEGERS.index(target_type)
    if source_type in (*_INTEGERS, "FLOAT") and target_type == "DOUBLE":
        return True
    return False


def ensure_table(conn: duckdb.DuckDBPyConnection, table: str, columns: Mapping[str, str]) -> None:
    """``CREATE TABLE IF NOT EXISTS`` with the given ``{column: type}``, as a write only when the table is missing."""
    if table_columns(conn, table):
        return
    body = ", ".join(f"{ident(c)} {t}" for c, t in columns.items())
    run_ddl(conn, f"CREATE TABLE IF NOT EXISTS {table_name(table)} ({body})")


def sync_columns(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    select_sql: str,
    *,
    required: Iterable[str] = (),
) -> list[str]:
    """Make ``table`` able to take ``INSERT INTO table BY NAME select_sql``; return the added columns.

    Every check runs before the first ``ALTER``: a column in ``required`` that the
    query no longer produces, or a column whose type is not compatible with the
    table's, raises SchemaChangeError and nothing is changed. Columns the query has
    and the table lacks are added (nullable; older rows read NULL). Columns the table
    has and the query lacks (not required) are left alone and filled with NULL.
    """
    target = table_columns(conn, table)
    if not target:
        raise ValueError(f"table {table} does not exist; create it first")
    source = describe(conn, select_sql)
    for column in required:
        if column not in source:
            raise SchemaChangeError(column, f"required by {table} but no longer delivered by its source")
    for column, source_type in source.items():
        if column in target and not compatible(source_type, target[column]):
            raise SchemaChangeError(column, f"the source now delivers {source_type}, {table} stores {target[column]}")
    added = [c for c in source if c not in target]
    for column in added:
        if not IDENTIFIER.match(column):
            raise SchemaChangeError(column, f"a new column name must match {IDENTIFIER.pattern}")
    for column in added:
        conn.execute(f"ALTER TABLE {table_name(table)} ADD COLUMN {column} {source[column]}")
    return added


def file_schemas(conn: duckdb.DuckDBPyConnection, files: list[str]) -> dict[str, dict[str, str]]:
    """``{file: {column: duckdb type}}`` read from the Parquet footers only."""
    if not files:
        return {}
    rows = conn.execute(
        """
        SELECT file_name, name, duckdb_type FROM parquet_schema($files)
        WHERE duckdb_type IS NOT NULL ORDER BY file_name, column_id
        """,
        {"files": files},
    ).fetchall()
    schemas: dict[str, dict[str, str]] = {f: {} for f in files}
    for file, column, column_type in rows:
        schemas.setdefault(file, {})[column] = column_type
    return schemas


def check_raw_files(
    conn: duckdb.DuckDBPyConnection,
    files: list[str],
    contract: Mapping[str, tuple[str, ...]],
    required: Iterable[str],
) -> dict[str, str]:
    """Check each raw file against ``contract`` ``{column: allowed duckdb types}``.

    Raises SchemaChangeError (naming the column and the file) when a ``required``
    column is missing from a file or a contract column has a type it does not allow.
    Returns every column found in any file, ``{column: type}``; those outside the
    contract are new and the caller keeps them.
    """
    found: dict[str, str] = {}
    required = tuple(required)
    for file, columns in file_schemas(conn, files).items():
        for column in required:
            if column not in columns:
                raise SchemaChangeError(column, f"required, but missing from {file}")
        for column, column_type in columns.items():
            allowed = contract.get(column)
            if allowed is not None and column_type not in allowed:
                raise SchemaChangeError(
                    column, f"is {column_type} in {file}; the raw contract allows {', '.join(allowed)}"
                )
            found.setdefault(column, column_type)
    return found
