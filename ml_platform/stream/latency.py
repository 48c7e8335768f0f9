"""Produce-to-lake latency and throughput, measured on a running sink (for the tests and the benchmark).

An event's latency is its batch's ``_ingested_at`` (when the sink wrote the batch file) minus
its ``_kafka_timestamp`` (the CreateTime the producer stamped when it was sent): producer
linger, broker, fetch, and the wait for the batch to fill or time out. The Parquet write
itself (a few ms) is not in it. Both clocks are this machine's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import polars as pl

from ml_platform.io.store import Store
from ml_platform.stream.day_events import read_batches
from ml_platform.stream.events import TOPIC, FlightEvent
from ml_platform.stream.offset_log import lake_batches, lake_offsets
from ml_platform.stream.producer import make_producer, produce_events


@dataclass(frozen=True)
class LatencyReport:
    events: int
    p50_seconds: float
    p95_seconds: float
    max_seconds: float
    produce_seconds: float  # from the first send to the last acknowledgement
    lake_events_per_second: float  # events / (last batch written - first event sent)

    def __str__(self) -> str:
        return (
            f"{self.events} events: produce-to-lake p50 {self.p50_seconds * 1000:.0f} ms, "
            f"p95 {self.p95_seconds * 1000:.0f} ms, max {self.max_seconds * 1000:.0f} ms; "
            f"{self.lake_events_per_second:,.0f} events/s into the lake"
        )


def measure_latency(
    bootstrap: str,
    store: Store,
    events: list[FlightEvent],
    *,
    rate: float = 0,
    topic: str = TOPIC,
    timeout: float = 120,
) -> LatencyReport:
    """Send ``events`` (at ``rate`` per second; 0 = as fast as possible) to a topic a sink is writing
    into ``store``; wait until all of them are in the lake and measure them there."""
    offsets: dict[int, list[int]] = {}
    started = time.monotonic()
    summary = produce_events(
        make_producer(bootstrap),
        _paced(events, rate),
        topic=topic,
        on_delivered=lambda m: offsets.setdefault(m.partition(), []).append(m.offset()),
    )
    produce_seconds = time.monotonic() - started
    if summary.failed:
        raise RuntimeError(f"{summary.failed} of {len(events)} events were not delivered: {dict(summary.errors)}")
    deadline = time.monotonic() + timeout
    while True:
        lake = lake_offsets(store, topic)
        if all(p in lake and lake[p].next_offset > max(found) for p, found in offsets.items()):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the sink did not write all {len(events)} events within {timeout:.0f} s")
        time.sleep(0.1)
    wanted = pl.DataFrame(
        [(p, o) for p, found in offsets.items() for o in found],
        schema={"_partition": pl.Int32, "_offset": pl.Int64},
        orient="row",
    )
    batches = [
        b for p, files in lake_batches(store, topic).items() if p in offsets for b in files if b.last >= min(offsets[p])
    ]
    landed = read_batches(store, batches).join(wanted, on=["_partition", "_offset"], how="semi")
    seconds = (
        pl.col("_ingested_at").cast(pl.Datetime("us", "UTC")) - pl.col("_kafka_timestamp")
    ).dt.total_microseconds()
    latency = landed.select((seconds / 1e6).alias("s"))["s"]
    span = (landed["_ingested_at"].max() - landed["_kafka_timestamp"].min()).total_seconds()
    return LatencyReport(
        events=landed.height,
        p50_seconds=float(latency.quantile(0.5)),
        p95_seconds=float(latency.quantile(0.95)),
        max_seconds=float(latency.max()),
        produce_seconds=produce_seconds,
        lake_events_per_second=landed.height / span if span > 0 else float("inf"),
    )


def _paced(events: list[FlightEvent], rate: float):
    """The events, each released no earlier than its turn at ``rate`` per second."""
    started = time.monotonic()
    for i, event in enumerate(events):
        if rate > 0 and (wait := started + i / rate - time.monotonic()) > 0:
            time.sleep(wait)
        yield event
