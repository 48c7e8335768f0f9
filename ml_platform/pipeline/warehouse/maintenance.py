"""Keeping a DuckLake warehouse small and fast: compact a table's files, expire old snapshots, delete old files.

Each daily load writes a few small Parquet files (and tiny inserts, at most 10 rows, are inlined
into the catalog); reloading a day adds delete files. ``compact_table`` flushes the inlined rows,
merges adjacent small files and rewrites files that are mostly deleted; the rows and every
snapshot stay as they were (time travel still works). ``expire_snapshots`` forgets the snapshots
older than the retention, ``delete_old_files`` removes the files no remaining snapshot uses.

Every call is a write on the catalog, so each holds the writer lock (``io.warehouse.writer_lock``);
a table's compaction must also not overlap that table's writers (its Dagster pool).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from ml_platform.io.warehouse import ident, table_name, writer_lock
from ml_platform.pipeline.warehouse.schema import table_columns

# Files that only an in-flight writer knows yet are "orphaned" too: never delete a recent one.
ORPHAN_MIN_AGE_HOURS = 24


@dataclass(frozen=True)
class Compaction:
    table: str
    files_before: int
    files_after: int
    delete_files_before: int
    delete_files_after: int

    def to_dict(self) -> dict:
        return {
            "files_before": self.files_before,
            "files_after": self.files_after,
            "delete_files_before": self.delete_files_before,
            "delete_files_after": self.delete_files_after,
        }


def _catalog(conn: duckdb.DuckDBPyConnection) -> str:
    return ident(conn.execute("SELECT current_database()").fetchone()[0])


def data_files(conn: duckdb.DuckDBPyConnection, table: str) -> tuple[int, int]:
    """(data files, delete files) of ``table`` in the current snapshot."""
    schema, name = table_name(table).split(".")
    return conn.execute(
        "SELECT count(*), count(delete_file) FROM ducklake_list_files($db, $table, schema => $schema)",
        {"db": _catalog(conn), "table": name, "schema": schema},
    ).fetchone()


def compact_table(conn: duckdb.DuckDBPyConnection, table: str) -> Compaction | None:
    """Flush ``table``'s inlined rows, merge its small files, rewrite its mostly deleted ones (None: no such table)."""
    if not table_columns(conn, table):
        return None
    schema, name = table_name(table).split(".")
    params = {"db": _catalog(conn), "table": name, "schema": schema}
    before = data_files(conn, table)
    with writer_lock(conn):
        conn.execute("CALL ducklake_flush_inlined_data($db, schema_name => $schema, table_name => $table)", params)
        conn.execute("CALL ducklake_merge_adjacent_files($db, $table, schema => $schema)", params)
        conn.execute("CALL ducklake_rewrite_data_files($db, $table, schema => $schema)", params)
    after = data_files(conn, table)
    return Compaction(table, before[0], after[0], before[1], after[1])


def snapshot_count(conn: duckdb.DuckDBPyConnection) -> int:
    return conn.execute("SELECT count(*) FROM ducklake_snapshots($db)", {"db": _catalog(conn)}).fetchone()[0]


def expire_snapshots(conn: duckdb.DuckDBPyConnection, retention_days: int) -> int:
    """Forget the snapshots older than ``retention_days`` (never the current one); returns how many."""
    with writer_lock(conn):
        expired = conn.execute(
            "CALL ducklake_expire_snapshots($db, older_than => now() - to_days($days))",
            {"db": _catalog(conn), "days": int(retention_days)},
        ).fetchall()
    return len(expired)


def delete_old_files(conn: duckdb.DuckDBPyConnection, retention_days: int) -> dict[str, int]:
    """Delete the files no remaining snapshot uses, and orphaned files older than the retention (a day at least)."""
    db = _catalog(conn)
    hours = max(24 * int(retention_days), ORPHAN_MIN_AGE_HOURS)
    with writer_lock(conn):
        old = conn.execute(
            "SELECT count(*) FROM ducklake_cleanup_old_files($db, cleanup_all => true)", {"db": db}
        ).fetchone()
        orphaned = conn.execute(
            "SELECT count(*) FROM ducklake_delete_orphaned_files($db, older_than => now() - to_hours($hours))",
            {"db": db, "hours": hours},
        ).fetchone()
    return {"old_files_deleted": old[0], "orphaned_files_deleted": orphaned[0]}
