"""The Dagster instance's event log: Dagster's SQLite storage, keeping its connections open.

Every run writes its history here: for a range run, a planned and a materialization event per
asset and day (a year through the reference pipeline: about 7,500 events). Dagster's own SQLite
storage makes a new engine for every statement and closes it after, so SQLAlchemy compiles each
statement again and the last connection to close checkpoints the write-ahead log to disk.
Keeping one engine per database file, with its connection open, and answering once the schema
questions Dagster asks before every asset event, writes the same rows in about a fifth of the
time (README "Performance").

The files, tables and schema are Dagster's, unchanged: `dagster.yaml` may go back to Dagster's
class at any time and keeps the history.
"""

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
    SqliteEventLogStorageWatchdog,
)
from watchdog.observers import Observer

# A webserver reads many runs' files; each kept open holds a file descriptor.
MAX_OPEN_FILES = 16
# Dagster's switch for handing a step's per-partition events (and a run's planned ones) to the
# storage as one batch (``store_event_batch``); every process using this storage reads it.
os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's `SqliteEventLogStorage` with one engine per file, its connection kept open."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, sa.Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._schema_seen: set[str] = set()
        self._batch = threading.local()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[sa.Connection]:
        batch = getattr(self._batch, "connections", None)
        if batch is not None:  # inside store_event_batch: this thread holds the lock
            if shard not in batch:
                batch[shard] = self._open_connection(shard)
                batch[shard].begin()
            yield batch[shard]
            return
        with self._db_lock, self._open_connection(shard) as conn, conn.begin():
            yield conn

    def _open_connection(self, shard: str) -> sa.Connection:
        engine = self._engine(shard)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        return engine.connect()

    def store_event_batch(self, events) -> None:
        """A range run's planned or materialized days in one transaction per file, not one per event.

        Dagster hands events over in batches when ``DAGSTER_EVENT_BATCH_SIZE`` is set (below).
        Each event is stored exactly as ``store_event`` stores it; if anything fails, nothing of
        the batch is kept and Dagster stores the events one by one.
        """
        with self._db_lock:
            self._batch.connections = batch = {}
            try:
                for event in events:
                    self.store_event(event)
                for conn in batch.values():
                    conn.commit()
            finally:
                self._batch.connections = None
                for conn in batch.values():
                    conn.close()  # rolls back what was not committed

    def _engine(self, shard: str) -> sa.Engine:
        if self._engines_pid != os.getpid():
            # A forked child must not use its parent's open SQLite connections.
            self._engines = OrderedDict()
            self._engines_pid = os.getpid()
        engine = self._engines.pop(shard, None) or _open(self.conn_string_for_shard(shard))
        self._engines[shard] = engine
        while len(self._engines) > MAX_OPEN_FILES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    # Dagster asks the file's schema before every asset event. Tables and columns only ever
    # appear (migrations add them), so what was found once is not asked again.
    def has_table(self, table_name: str) -> bool:
        if table_name not in self._schema_seen and super().has_table(table_name):
            self._schema_seen.add(table_name)
        return table_name in self._schema_seen

    def _has_asset_key_col_on_connection(self, conn, column_name: str) -> bool:
        seen = f"asset_keys.{column_name}"
        if seen not in self._schema_seen and super()._has_asset_key_col_on_connection(conn, column_name):
            self._schema_seen.add(seen)
        return seen in self._schema_seen

    def watch(self, run_id, cursor, callback) -> None:
        if not self._obs:
            self._obs = Observer()
            self._obs.start()
        watchdog = _WalWatchdog(self, run_id, callback, cursor)
        watch = self._obs.schedule(watchdog, self._base_dir, recursive=True)
        self._watchers[run_id][callback] = (watchdog, watch)

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()


class _WalWatchdog(SqliteEventLogStorageWatchdog):
    """Follows a run's file for the UI's live log, and its write-ahead log, where commits land
    while a connection is open."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._patterns = [self._log_path, f"{self._log_path}-wal"]

    def on_modified(self, event) -> None:
        self._process_log()


def _open(conn_string: str) -> sa.Engine:
    engine = sa.create_engine(
        conn_string,
        poolclass=sa.pool.QueuePool,
        pool_size=1,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )

    @sa.event.listens_for(engine, "connect")
    def _synchronous_normal(dbapi_conn, _record) -> None:
        # In WAL mode NORMAL cannot corrupt the file; a power cut may lose the last commits.
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    return engine
