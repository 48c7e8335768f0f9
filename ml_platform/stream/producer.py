"""Replaying 2013 into the ``flight_events`` topic in simulated time.

The events of the replayed days are sent in event-time order; at ``speed`` S one second of
wall time stands for S seconds of flight time (3600: an hour a second), starting from the
first event; speed 0 sends as fast as the broker takes them. The producer is idempotent
(``enable.idempotence``, ``acks=all``), so its own retries do not write an event twice, and it
hashes keys like the Java client (murmur2), so a flight's events land in the same partition
whichever client sends them.

Against the embedded Tansu broker pass ``idempotent=False``: Tansu 0.6.0 answers a batch
retried across a broker crash as a duplicate (with wrong offsets) without having stored it,
so an idempotent producer loses acknowledged events there (measured: 1 to 64 per crash).
Without idempotence (still ``acks=all``, one request in flight, so order is kept) a retry can
store an event twice; it keeps its ``event_id``, and the lake's readers keep one of each.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message, Producer
from tqdm import tqdm

from ml_platform.stream.events import KINDS, TOPIC, FlightEvent, events_for_day

log = logging.getLogger(__name__)


def make_producer(bootstrap: str, *, idempotent: bool = True, **overrides) -> Producer:
    """A producer with acks=all and a short linger (low produce-to-lake latency); idempotent unless
    told otherwise (see the module docstring for when not)."""
    config = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": idempotent,
        "acks": "all",
        "linger.ms": 5,
        "partitioner": "murmur2_random",
        "message.timeout.ms": 300_000,  # keep retrying through a broker restart of up to 5 minutes
        "logger": logging.getLogger("ml_platform.stream.kafka"),
    }
    if not idempotent:
        config["max.in.flight.requests.per.connection"] = 1  # a retry cannot overtake: order is kept
    return Producer(config | overrides)


@dataclass
class ReplaySummary:
    """What a replay sent: events delivered per kind, and the ones the broker refused."""

    sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    failed: int = 0
    errors: Counter = field(default_factory=Counter)
    first_event_time: dt.datetime | None = None
    last_event_time: dt.datetime | None = None
    wall_seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.sent.values())


def produce_events(
    producer: Producer,
    events: Iterable[FlightEvent],
    *,
    topic: str = TOPIC,
    speed: float = 0,
    summary: ReplaySummary | None = None,
    progress: tqdm | None = None,
    on_delivered: Callable[[Message], None] | None = None,
) -> ReplaySummary:
    """Send ``events`` (in event-time order) and wait until the broker acknowledged each one.

    ``on_delivered`` is called with each acknowledged message (its partition and offset).
    """
    summary = summary or ReplaySummary()

    def delivered(error: KafkaError | None, message: Message, kind: str) -> None:
        if error is None:
            summary.sent[kind] += 1
            if on_delivered is not None:
                on_delivered(message)
        else:
            summary.failed += 1
            summary.errors[error.str()] += 1
        if progress is not None:
            progress.update(1)

    started, sim_start = time.monotonic(), None
    for event in events:
        if sim_start is None:
            sim_start = event.event_time
            summary.first_event_time = summary.first_event_time or event.event_time
        summary.last_event_time = event.event_time
        if speed > 0:
            due = started + (event.event_time - sim_start).total_seconds() / speed
            while (wait := due - time.monotonic()) > 0:
                producer.poll(min(wait, 0.1))
        while True:
            try:
                producer.produce(
                    topic,
                    key=event.flight_key.encode(),
                    value=event.to_json(),
                    on_delivery=lambda err, msg, kind=event.kind: delivered(err, msg, kind),
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.05)
        producer.poll(0)
        if progress is not None and sim_start is not None:
            progress.set_postfix_str(event.event_time.strftime("%Y-%m-%d %H:%M UTC"), refresh=False)
    while producer.flush(1.0):
        pass
    summary.wall_seconds += time.monotonic() - started
    if summary.failed:
        log.error("%d events were not delivered: %s", summary.failed, dict(summary.errors))
    return summary


def replay_events(start: dt.date, days: int) -> list[FlightEvent]:
    """The events of the flights of ``days`` days from ``start``, merged in event-time order."""
    events = [e for i in range(days) for e in events_for_day(start + dt.timedelta(days=i))]
    return sorted(events, key=lambda e: e.event_time)


def replay_stream(
    bootstrap: str,
    start: dt.date,
    days: int,
    speed: float,
    *,
    topic: str = TOPIC,
    progress: bool = True,
    idempotent: bool = True,
) -> ReplaySummary:
    """Replay ``days`` days of 2013 from ``start`` into ``topic`` at ``speed`` (simulated s per wall s).

    A progress bar (stderr) shows events sent and the simulated time. Returns the events
    delivered per kind; a re-run sends the same events again (same ids: the lake's readers
    keep one of each). ``idempotent=False`` for the embedded Tansu broker (module docstring).
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    if speed < 0:
        raise ValueError("speed must be 0 (as fast as possible) or positive")
    events = replay_events(start, days)
    producer = make_producer(bootstrap, idempotent=idempotent)
    with tqdm(total=len(events), unit="event", desc=f"{topic} {start}+{days}d", disable=not progress) as bar:
        return produce_events(producer, events, topic=topic, speed=speed, progress=bar)
