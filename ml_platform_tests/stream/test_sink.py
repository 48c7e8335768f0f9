"""The lake sink against a real broker on loopback, as separate processes: every produced message lands
in the lake exactly once, through sink crashes, malformed messages and broker outages, and a day read
back from the stream is the day's landing file."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import polars as pl
import pytest
from confluent_kafka import Consumer, TopicPartition

from ml_platform.devdata.reference_data import flights_csv_for_day
from ml_platform.pipeline.landing import LINEAGE_COLUMNS, parse_flights_csv
from ml_platform.stream.day_events import (
    event_time_watermark,
    is_day_complete,
    last_complete_day,
    read_batches,
    read_day_events,
)
from ml_platform.stream.events import raw_flights_from_events
from ml_platform.stream.latency import measure_latency
from ml_platform.stream.offset_log import lake_batches, lake_offsets, offset_log_problems, read_status
from ml_platform.stream.producer import make_producer, produce_events, replay_events, replay_stream
from ml_platform_tests.stream.conftest import start_broker, wait_for_lake


class Sent:
    """The event id of each acknowledged message, and where the delivery report put it.

    (After a broker restart Tansu can report a wrong offset for a retried batch, so the tests
    compare the lake with the broker's log itself, and use these offsets only before any restart.)
    """

    def __init__(self):
        self.ids: list[str] = []
        self.at: dict[tuple[int, int], str] = {}

    def __call__(self, message) -> None:
        self.ids.append(json.loads(message.value())["event_id"])
        self.at[(message.partition(), message.offset())] = self.ids[-1]


def broker_log(bootstrap: str, timeout: float = 30) -> dict[tuple[int, int], str]:
    """The whole topic as the broker holds it: (partition, offset) -> event id, read from offset 0
    until each partition's position reaches the high watermark its fetches report (or nothing new
    comes for 3 s: a broker may leave offsets empty, e.g. Tansu after a crash)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-reader", "enable.auto.commit": False})
    partitions = [TopicPartition("flight_events", p, 0) for p in range(3)]
    consumer.assign(partitions)
    found: dict[tuple[int, int], str] = {}
    deadline, last_new = time.monotonic() + timeout, time.monotonic()
    try:
        while time.monotonic() < deadline:
            for m in consumer.consume(5000, 0.5):
                if m.error() is None:
                    found[(m.partition(), m.offset())] = json.loads(m.value())["event_id"]
                    last_new = time.monotonic()
            ends = [consumer.get_watermark_offsets(tp, cached=True)[1] for tp in partitions]
            at = [tp.offset for tp in consumer.position(partitions)]
            if all(e >= 0 and a >= e for a, e in zip(at, ends, strict=True)) or time.monotonic() - last_new > 3:
                return found
        raise TimeoutError(f"read {len(found)} messages of the topic in {timeout:.0f} s")
    finally:
        consumer.close()


def lake_rows(store) -> pl.DataFrame:
    return read_batches(store, [b for files in lake_batches(store).values() for b in files])


def assert_exactly_once(store, log: dict[tuple[int, int], str], sent: Sent) -> pl.DataFrame:
    """The lake is the broker's log, offset for offset, with no offset twice; the batch files touch,
    from offset 0; and every acknowledged event is there."""
    assert offset_log_problems(store) == []
    assert all(files[0].first == 0 for files in lake_batches(store).values())
    rows = lake_rows(store)
    assert rows.select("_partition", "_offset").is_duplicated().sum() == 0
    landed = dict(zip(zip(rows["_partition"], rows["_offset"], strict=True), rows["event_id"], strict=True))
    assert landed == log
    ends: dict[int, int] = {}
    for p, o in log:
        ends[p] = max(ends.get(p, 0), o + 1)
    assert {p: o.next_offset for p, o in lake_offsets(store).items()} == ends
    assert set(sent.ids) <= set(landed.values())
    return rows


@pytest.mark.slow
def test_100k_events_land_exactly_once_though_the_sink_is_killed_twice(broker, lake, sinks):
    """100,000 real events (2013-01-01 on) are produced while the sink runs; it is SIGKILLed at about
    20 % and 55 % of the way and restarted each time. The lake then holds each of them once: 0 lost,
    0 duplicated, batch files touching with no gap or overlap."""
    events = replay_events(dt.date(2013, 1, 1), 60)[:100_000]
    span = (events[-1].event_time - events[0].event_time).total_seconds()
    sent = Sent()
    producing = threading.Thread(
        target=produce_events,
        args=(make_producer(broker.bootstrap), events),
        kwargs={"speed": span / 12, "on_delivered": sent},  # about 12 s of sending
    )
    sink = sinks(broker.bootstrap, lake.url)
    started = time.monotonic()
    producing.start()
    kills = []
    for share in (0.20, 0.55):
        wait_for_lake(lake, int(share * len(events)), timeout=90)
        sink.kill()
        kills.append((sum(p.messages for p in lake_offsets(lake).values()), producing.is_alive()))
        sink = sinks(broker.bootstrap, lake.url)
    producing.join(120)
    wait_for_lake(lake, len(events), timeout=90)
    seconds = time.monotonic() - started
    assert len(sent.ids) == len(events)
    log = broker_log(broker.bootstrap)
    assert log == sent.at  # no broker restart here: the delivery reports are the log
    rows = assert_exactly_once(lake, log, sent)
    assert rows.height == 100_000 and rows["event_id"].n_unique() == 100_000
    print(f"\n100k events with 2 sink kills (lake at {kills}): {seconds:.1f} s, {len(events) / seconds:,.0f} events/s")
    assert "starting again" not in sink.log  # the restarted sinks resumed without errors


def test_malformed_messages_go_to_dead_letters_and_the_stream_flows(broker, lake, sinks):
    """Four kinds of bad message between good events: each lands in the dead-letter file of its
    batch with its reason, offset and bytes; the good events around it land in the batch itself."""
    good = replay_events(dt.date(2013, 1, 8), 1)[:300]
    record = json.loads(good[0].to_json())
    bad = {
        b"this is not json": "not JSON",
        json.dumps({k: v for k, v in record.items() if k != "dep_delay"}).encode(): "missing field(s): dep_delay",
        json.dumps(record | {"dep_delay": "six"}).encode(): "field dep_delay: expected an integer",
        json.dumps(record | {"kind": "boarded"}).encode(): "unknown kind 'boarded'",
    }
    sink = sinks(broker.bootstrap, lake.url)
    producer = make_producer(broker.bootstrap)
    sent = Sent()
    produce_events(producer, good[:100], on_delivered=sent)
    for value in bad:
        producer.produce("flight_events", key=b"2013-01-08|US|1117|EWR|500", value=value)
    producer.flush(10)
    produce_events(producer, good[100:], on_delivered=sent)
    wait_for_lake(lake, len(good) + len(bad))
    rows = lake_rows(lake)
    assert rows.height == 300 and set(rows["event_id"]) == set(sent.at.values())
    assert offset_log_problems(lake) == []
    dead_files = [b.dead_letter_path for files in lake_batches(lake).values() for b in files if b.dead_letter_path]
    dead = pl.concat([pl.read_parquet(lake.uri(path)) for path in dead_files])
    assert dead.height == 4
    for value, reason in bad.items():
        (row,) = dead.filter(pl.col("_value") == value).iter_rows(named=True)
        assert reason in row["_reason"]
        assert row["_key"] == b"2013-01-08|US|1117|EWR|500"
        assert (row["_partition"], row["_offset"]) not in sent.at  # its own offset, counted in a batch's range
    assert "dead-lettered" in sink.log


def test_broker_down_at_start_then_started(tmp_path, lake, sinks):
    """A sink started before its broker says so and retries with backoff; once the broker is up it
    consumes everything from offset 0."""
    from ml_platform.stream.broker import free_port

    port = free_port()
    sink = sinks(f"127.0.0.1:{port}", lake.url)
    deadline = time.monotonic() + 20
    while sink.log.count("starting again from the lake's offsets in") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sink.proc.poll() is None
    assert f"Kafka broker at 127.0.0.1:{port} is unreachable" in sink.log
    assert "starting again from the lake's offsets in 0.5 s" in sink.log
    assert "starting again from the lake's offsets in 1.0 s" in sink.log  # backing off
    broker = start_broker(tmp_path / "late-broker", port=port)
    try:
        sent = Sent()
        produce_events(make_producer(broker.bootstrap), replay_events(dt.date(2013, 1, 8), 1), on_delivered=sent)
        wait_for_lake(lake, len(sent.ids), timeout=60)
        assert_exactly_once(lake, broker_log(broker.bootstrap), sent)
    finally:
        broker.stop()


@pytest.mark.slow
def test_broker_killed_mid_stream_and_restarted_loses_nothing(broker, lake, sinks):
    """The broker is SIGKILLed while events flow and restarted 3 s later on the same log folder: the
    producer retries, the sink reconnects, and every acknowledged event is in the lake, each offset of
    the broker's log once. (The producer is not idempotent here: on Tansu an idempotent one loses
    events retried across the crash; see ml_platform/stream/producer.py.)"""
    events = replay_events(dt.date(2013, 1, 8), 6)
    span = (events[-1].event_time - events[0].event_time).total_seconds()
    sent = Sent()
    sink = sinks(broker.bootstrap, lake.url)
    producing = threading.Thread(
        target=produce_events,
        args=(make_producer(broker.bootstrap, idempotent=False), events),
        kwargs={"speed": span / 8, "on_delivered": sent},
    )
    producing.start()
    wait_for_lake(lake, 2000)
    broker.kill_broker()
    time.sleep(3)
    broker.start_broker()
    producing.join(120)
    assert len(sent.ids) == len(events), "every event acknowledged in the end"
    log = broker_log(broker.bootstrap)
    wait_for_lake(lake, len(log))
    rows = assert_exactly_once(lake, log, sent)
    # A retried batch may be stored twice, at new offsets: the lake then holds those events once per
    # offset, and the readers keep one per event_id.
    assert rows["event_id"].n_unique() == len(events)
    assert read_day_events(lake, dt.date(2013, 1, 10)).height == sum(
        e.flight_date == dt.date(2013, 1, 10) for e in events
    )
    ends = {p: o.next_offset for p, o in lake_offsets(lake).items()}
    print(
        f"\nbroker restart: {len(log) - len(events)} events stored twice, "
        f"{sum(ends.values()) - len(log)} offsets left empty by the broker"
    )
    assert "unreachable" in sink.log and "reachable again" in sink.log


def test_a_replayed_day_read_back_is_its_landing_file(broker, lake, sinks):
    """ml-platform stream --start 2013-01-08 --days 2 --speed 0: the sink writes both days; 01-08 is
    complete (the stream passed its end by the allowed lateness), 01-09 not yet; 01-08's events give
    back exactly the rows the lake parses from flights_2013-01-08.csv."""
    sink = sinks(broker.bootstrap, lake.url)
    summary = replay_stream(broker.bootstrap, dt.date(2013, 1, 8), 2, speed=0, progress=False)
    assert summary.failed == 0 and summary.sent["cancelled"] == 9  # 4 on the 8th, 5 on the 9th
    wait_for_lake(lake, summary.total)
    watermark = event_time_watermark(lake, partitions=3)
    assert watermark is not None and watermark > dt.datetime(2013, 1, 10, 0, tzinfo=dt.UTC)
    assert is_day_complete(dt.date(2013, 1, 8), watermark)
    assert not is_day_complete(dt.date(2013, 1, 9), watermark)
    assert last_complete_day(watermark) == dt.date(2013, 1, 8)
    day = read_day_events(lake, dt.date(2013, 1, 8))
    assert day.height == 1794 and day["flight_date"].unique().to_list() == [dt.date(2013, 1, 8)]
    from_file = parse_flights_csv("f.csv", flights_csv_for_day(dt.date(2013, 1, 8))).drop(LINEAGE_COLUMNS)
    order = ["year", "month", "day", "sched_dep_time", "carrier", "flight", "origin"]
    assert raw_flights_from_events(day).sort(order).equals(from_file.sort(order))
    time.sleep(5.5)  # the sink publishes its lag every 5 s
    status = read_status(lake)
    assert {p["lag"] for p in status["partitions"].values()} == {0}
    assert sink.proc.poll() is None


def test_replay_follows_simulated_time(broker):
    """At speed S a replay takes (span of event times) / S of wall time, in event-time order."""
    events = replay_events(dt.date(2013, 1, 8), 1)
    span = (events[-1].event_time - events[0].event_time).total_seconds()
    speed = span / 3  # about 3 s
    summary = replay_stream(broker.bootstrap, dt.date(2013, 1, 8), 1, speed=speed, progress=False)
    assert summary.sent == {"cancelled": 4, "departed": 895, "arrived": 895}
    assert 2.8 <= summary.wall_seconds <= 6
    assert summary.first_event_time == events[0].event_time and summary.last_event_time == events[-1].event_time


def test_produce_to_lake_latency(broker, lake, sinks):
    """Latency p50/p95 at 500 events/s with the default sink settings (1 s batches). The goal (p95
    under 5 s) belongs to the benchmark; here it is only checked loosely."""
    sink = sinks(broker.bootstrap, lake.url, "--max-batch-seconds", "1.0")
    report = measure_latency(broker.bootstrap, lake, replay_events(dt.date(2013, 1, 8), 2)[:2500], rate=500)
    print(f"\n{report}")
    assert report.events == 2500
    assert 0 < report.p50_seconds <= report.p95_seconds < 10
    assert sink.proc.poll() is None


def test_a_broker_that_lost_its_log_is_reported_not_skipped(tmp_path, lake, sinks):
    """A broker without durable storage restarted empty: its log now ends before the lake's offsets.
    The sink says so and writes nothing over or past what the lake holds."""
    broker = start_broker(tmp_path / "memory-broker", in_memory=True)
    try:
        sink = sinks(broker.bootstrap, lake.url)
        sent = Sent()
        produce_events(make_producer(broker.bootstrap), replay_events(dt.date(2013, 1, 8), 1)[:600], on_delivered=sent)
        wait_for_lake(lake, 600)
        before = lake_offsets(lake)
        broker.stop_broker()
        broker.start_broker()
        from ml_platform.stream.broker import ensure_topic

        ensure_topic(broker.bootstrap)
        produce_events(make_producer(broker.bootstrap), replay_events(dt.date(2013, 1, 9), 1)[:30])
        deadline = time.monotonic() + 20
        while "the broker lost messages" not in sink.log and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "the broker lost messages" in sink.log
        assert lake_offsets(lake) == before
    finally:
        broker.stop()
