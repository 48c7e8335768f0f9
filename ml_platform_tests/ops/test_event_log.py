"""The Dagster instance of a data home keeps its event log with open connections: what it
writes is what Dagster's own SQLite storage reads, in the folders it always used, and the UI's
live log of a running run still follows every event."""

import threading
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log import SqliteEventLogStorage

from ml_platform.ops.bootstrap import prepare_dagster_home
from ml_platform.ops.event_log import MAX_OPEN_FILES, PooledSqliteEventLogStorage
from ml_platform.settings import Settings

JANUARY = dg.DailyPartitionsDefinition(start_date="2013-01-01", end_date="2013-02-01")


@dg.asset(partitions_def=JANUARY, backfill_policy=dg.BackfillPolicy.single_run())
def flights_per_day(context: dg.AssetExecutionContext) -> None:
    context.log.info(f"{len(context.partition_keys)} days")


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(prepare_dagster_home(Settings.from_env({"ML_PLATFORM_HOME": str(home)}))))


def test_a_range_run_reads_back_through_dagsters_own_storage(tmp_path, monkeypatch):
    batches = []
    store_batch = PooledSqliteEventLogStorage.store_event_batch
    monkeypatch.setattr(
        PooledSqliteEventLogStorage,
        "store_event_batch",
        lambda self, events: batches.append(len(events)) or store_batch(self, events),
    )
    with _instance(tmp_path) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        result = dg.materialize(
            [flights_per_day],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": "2013-01-01",
                "dagster/asset_partition_range_end": "2013-01-31",
            },
        )
        assert result.success
        # The files of Dagster's `storage: sqlite`, so a data home keeps its earlier history.
        history = tmp_path / "dagster" / "history"
        for db in ("runs.db", "runs/index.db", f"runs/{result.run_id}.db"):
            assert (history / db).is_file(), db

        # Read while this instance still holds its connections, as the webserver would.
        plain = SqliteEventLogStorage(storage._base_dir)
        key = flights_per_day.key
        assert len(plain.get_materialized_partitions(key)) == 31
        assert plain.get_logs_for_run(result.run_id) == instance.all_logs(result.run_id)
        planned = plain.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
        assert len(planned.records) == 31
        plain.dispose()
    assert batches == [31, 31], "the planned and the materialized days each came as one batch"


def _entry(run_id: str, message: str) -> dg.EventLogEntry:
    return dg.EventLogEntry(
        error_info=None,
        level="INFO",
        user_message=message,
        run_id=run_id,
        timestamp=1357016400.0,
        step_key=None,
        job_name="load",
        dagster_event=None,
    )


def test_a_batch_is_stored_whole_or_not_at_all(tmp_path, monkeypatch):
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    run_id = "5d3c1f0e-8a2b-4c6d-9e7f-0a1b2c3d4e5f"
    days = [_entry(run_id, f"2013-01-0{n}") for n in range(1, 4)]
    store_event = PooledSqliteEventLogStorage.store_event

    def fail_on_the_third(self, event):
        if event.user_message == "2013-01-03":
            raise OSError("disk full")
        store_event(self, event)

    monkeypatch.setattr(PooledSqliteEventLogStorage, "store_event", fail_on_the_third)
    with pytest.raises(OSError):
        storage.store_event_batch(days)
    assert storage.get_logs_for_run(run_id) == []  # Dagster then stores them one by one
    monkeypatch.setattr(PooledSqliteEventLogStorage, "store_event", store_event)
    storage.store_event_batch(days)
    assert [e.user_message for e in storage.get_logs_for_run(run_id)] == ["2013-01-01", "2013-01-02", "2013-01-03"]
    storage.dispose()


def test_the_live_log_follows_events_committed_on_an_open_connection(tmp_path):
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    run_id = "0b9e7a52-3c7d-4f2e-9d55-1a4c0f6e8b21"
    seen, arrived = [], threading.Event()

    def callback(entry, cursor):
        seen.append(entry.user_message)
        arrived.set()

    storage.get_logs_for_run(run_id)  # opens the run's file and keeps the connection
    storage.watch(run_id, None, callback)
    storage.store_event(_entry(run_id, "842 flights on 2013-01-01"))
    assert arrived.wait(10), "the watch never saw the event"
    assert seen == ["842 flights on 2013-01-01"]
    storage.dispose()


def test_a_process_reading_many_runs_keeps_a_bounded_number_of_files_open(tmp_path):
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    for n in range(MAX_OPEN_FILES + 10):
        storage.get_logs_for_run(f"run-{n}")
    assert len(storage._engines) == MAX_OPEN_FILES
    assert f"run-{MAX_OPEN_FILES + 9}" in storage._engines and "run-0" not in storage._engines
    storage.dispose()
    assert not storage._engines


def test_what_the_storage_overrides_is_still_what_dagster_has():
    """The subclass leans on Dagster internals: a Dagster upgrade that renames or re-signs any of
    them must fail here, loudly, before it fails a run. Update ml_platform/ops/event_log.py, then this."""
    import inspect

    assert dg.__version__ == "1.13.27", "re-check ml_platform/ops/event_log.py against this Dagster version"
    expected = {
        "_connect": ["self", "shard"],
        "store_event": ["self", "event"],
        "store_event_batch": ["self", "events"],
        "has_table": ["self", "table_name"],
        "_has_asset_key_col_on_connection": ["self", "conn", "column_name"],
        "watch": ["self", "run_id", "cursor", "callback"],
        "conn_string_for_shard": ["self", "shard_name"],
        "_initdb": ["self", "engine", "for_index_shard"],
        "dispose": ["self"],
    }
    for name, params in expected.items():
        found = list(inspect.signature(getattr(SqliteEventLogStorage, name)).parameters)
        assert found == params, f"SqliteEventLogStorage.{name}{found}"
    storage = SqliteEventLogStorage.__init__
    assert list(inspect.signature(storage).parameters)[:3] == ["self", "base_dir", "inst_data"]
    source = inspect.getsource(SqliteEventLogStorage)
    for attribute in ("self._initialized_dbs", "self._db_lock", "self._obs", "self._watchers", "self._base_dir"):
        assert attribute in source, attribute
