"""The stream sink keeps the online airport state current: each batch's departures and cancellations
reach their origin's entity in Redis once the batch is in the lake, as `ml-platform up` runs it."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from ml_platform.io.store import open_store
from ml_platform.serving.airport_state import departure_time_us
from ml_platform.serving.codec import from_micros
from ml_platform.serving.online_store import OnlineStore, OnlineStoreSettings
from ml_platform.stream.producer import make_producer, produce_events, replay_events
from ml_platform_tests.stream.conftest import SinkProcess, start_broker, wait_for_lake

from .conftest import unique_prefix

pytestmark = pytest.mark.slow
DAY = dt.date(2013, 1, 8)


def test_departures_streamed_update_each_origins_airport_state(redis_url, tmp_path):
    broker = start_broker(tmp_path / "broker")
    store = OnlineStore(OnlineStoreSettings(redis_url, unique_prefix(), ttl_seconds=3600))
    lake = open_store(str(tmp_path / "lake"))
    sink = SinkProcess(
        broker.bootstrap,
        lake.url,
        tmp_path / "sink.log",
        "--redis-url",
        redis_url,
        "--key-prefix",
        store.settings.prefix,
    ).start()
    try:
        events = replay_events(DAY, 1)
        produce_events(make_producer(broker.bootstrap), events)
        wait_for_lake(lake, len(events))
        departed = [e for e in events if e.kind == "departed"]
        for origin in ("EWR", "JFK", "LGA"):
            mine = [e for e in departed if e.origin == origin]
            newest = from_micros(max(departure_time_us(e.flight_date, e.event_time) for e in mine))
            deadline = time.monotonic() + 10  # the online call follows the batch file
            while (entity := store.read_airport(origin)) is None or entity.known_at != newest:
                assert time.monotonic() < deadline, f"{origin}: {entity and entity.known_at} != {newest}\n{sink.log}"
                time.sleep(0.1)
            assert len(entity.departures) == len(mine) > 250
            assert {d[1] for d in entity.departures} == {e.dep_delay for e in mine}
        assert sink.proc.poll() is None
    finally:
        sink.stop()
        broker.stop()
        store.delete_all()
        store.close()
