"""The same days ingested from the stream and from files give the same `core.fct_flights` rows.

Real broker and sink processes on loopback; the stream sensor reads only the lake (offsets and
the new files' event times), waits until a day's events are complete, then asks for one
ingestion run over the completed days, exactly as the landing sensor does for files.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from ml_platform.defs.lake.reference import raw_reference_tables
from ml_platform.defs.lake.stream import stream_sensor
from ml_platform.defs.warehouse.assets import dim_airports, dim_carriers, dim_planes
from ml_platform.io.store import open_store
from ml_platform.io.warehouse import connect_warehouse
from ml_platform.ops.bootstrap import replay, seed
from ml_platform.settings import Settings
from ml_platform.stream.producer import replay_stream
from ml_platform_tests.helpers import platform_defs, run_days
from ml_platform_tests.stream.conftest import wait_for_lake

pytestmark = pytest.mark.slow

KEY = "flight_date, carrier, flight, origin, sched_dep_time"
COMPARED = (
    "flight_date, carrier, flight, origin, sched_dep_time, tailnum, dest, dep_delay, arr_delay, "
    "sched_dep_utc, actual_dep_utc, sched_arr_utc, actual_arr_utc, is_cancelled, is_diverted, is_delayed"
)


def _sensor(instance, resources, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    return stream_sensor(context)


def _load(instance, settings: Settings, first: str, last: str, job: str, tags=None) -> None:
    resources = platform_defs().resources
    assert dg.materialize(
        [*raw_reference_tables, dim_carriers, dim_airports, dim_planes], instance=instance, resources=resources
    ).success
    assert run_days(instance, job, first, last).success
    assert run_days(instance, "load_warehouse", first, last).success


def _fact(settings: Settings, first: str, last: str) -> list[tuple]:
    with connect_warehouse(settings.warehouse, read_only=True) as conn:
        return conn.execute(
            f"SELECT {COMPARED} FROM core.fct_flights WHERE flight_date BETWEEN ? AND ? ORDER BY {KEY}",
            [first, last],
        ).fetchall()


def test_streamed_days_equal_the_same_days_from_files(tmp_path, monkeypatch, settings, broker, sinks):
    # Home A: the days as files.
    seed(settings)
    replay(settings, dt.date(2013, 1, 8), 2)
    with dg.instance_for_test() as instance:
        _load(instance, settings, "2013-01-08", "2013-01-09", "ingest_landing")
    from_files = _fact(settings, "2013-01-08", "2013-01-09")
    assert len(from_files) == 899 + 902  # the two days' flights

    # Home B: the same days (and the next, which completes them) as a stream.
    monkeypatch.setenv("ML_PLATFORM_HOME", str(tmp_path / "streamed"))
    streamed = Settings.from_env()
    seed(streamed)
    sinks(broker.bootstrap, streamed.lake_url)
    summary = replay_stream(broker.bootstrap, dt.date(2013, 1, 8), 3, 0, progress=False, idempotent=False)
    wait_for_lake(open_store(streamed.lake_url), sum(summary.sent.values()))
    with dg.instance_for_test() as instance:
        resources = {"lake_store": platform_defs().resources["lake_store"]}
        result = _sensor(instance, resources)
        [request] = result.run_requests  # one run for both completed days; 01-10 is not complete
        assert (
            request.tags["dagster/asset_partition_range_start"],
            request.tags["dagster/asset_partition_range_end"],
        ) == (
            "2013-01-08",
            "2013-01-09",
        )
        again = _sensor(instance, resources, result.cursor)
        assert not again.run_requests  # nothing new: no second run
        _load(instance, streamed, "2013-01-08", "2013-01-09", "ingest_stream")
        events = instance.get_latest_materialization_event(dg.AssetKey(["lake", "raw_flight_events"]))
        assert events.asset_materialization.metadata["topic"].value == "flight_events"
    assert _fact(streamed, "2013-01-08", "2013-01-09") == from_files
