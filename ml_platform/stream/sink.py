"""The lake sink: the ``flight_events`` topic into the lake, exactly once, in micro-batches.

Exactly once comes from the lake, not from Kafka: on start, and again after any error, each
partition is read from the lake's last end offset + 1 (``offset_log.lake_offsets``), with
``assign()`` and explicit offsets; a batch is written under its offset range, atomically, so a
crash leaves either the whole batch or nothing, and the next run re-reads exactly what is not
in the lake. The consumer group's committed offsets are only written for lag tools; they are
never read. A batch is flushed when it holds ``max_batch_messages`` or its oldest message has
waited ``max_batch_seconds``.

A message that is not a valid event (``events.parse_event``) goes to the dead-letter file of its
batch with the reason, its offset and its raw bytes, and the stream goes on.

Broker trouble: unreachable at start, the sink logs why and retries with exponential backoff;
lost mid-stream, the client reconnects by itself while buffered events are still written.
Offsets the broker no longer has, or a broker log shorter than the lake (a broker whose log
was reset), are reported as errors and never skipped over.

Every few seconds it writes ``raw/<topic>/_sink_status.json``: per partition the lake's next
offset, the broker's high watermark and the lag, so nobody needs to ask the broker.

``run_sink`` is the long-running service (``python -m ml_platform.stream.sink``); it stops
cleanly on SIGTERM or SIGINT, writing what it buffered. Run one sink per topic: two would
write overlapping ranges (``offset_log.offset_log_problems`` would show them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from ml_platform.io.store import Store, open_store
from ml_platform.stream import offset_log
from ml_platform.stream.broker import bootstrap_from_env
from ml_platform.stream.events import FIELD_NAMES, TOPIC, FlightEvent, parse_event
from ml_platform.stream.offset_log import DEAD_LETTER_SCHEMA, LAKE_EVENT_SCHEMA

log = logging.getLogger(__name__)
DEFAULT_GROUP = "ml_platform_lake_sink"
_BROKER_DOWN = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE, KafkaError._TIMED_OUT}


class SinkError(RuntimeError):
    """A condition the sink cannot consume past; it restarts from the lake's offsets after a backoff."""


@dataclass(frozen=True)
class SinkConfig:
    topic: str = TOPIC
    group_id: str = DEFAULT_GROUP  # for lag tools only: its offsets are never read
    max_batch_messages: int = 20_000
    max_batch_seconds: float = 1.0
    retry_initial_seconds: float = 0.5
    retry_max_seconds: float = 30.0
    status_every_seconds: float = 5.0


@dataclass
class _Buffer:
    """What one partition has consumed since its last batch file."""

    start: int | None  # the first offset of the next batch (None: the first message's)
    events: list[tuple] = field(default_factory=list)
    dead: list[tuple] = field(default_factory=list)
    online: list[FlightEvent] = field(default_factory=list)  # its departures and cancellations
    last: int | None = None
    since: float | None = None  # monotonic time of the oldest buffered message

    @property
    def size(self) -> int:
        return len(self.events) + len(self.dead)


def _timestamp(message: Message) -> dt.datetime | None:
    kind, ms = message.timestamp()
    return None if ms is None or ms < 0 else dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


class LakeSink:
    """Consumes ``config.topic`` from ``bootstrap`` into ``store``; see the module docstring."""

    def __init__(
        self,
        bootstrap: str,
        store: Store,
        config: SinkConfig = SinkConfig(),
        online: Callable[[list[FlightEvent]], None] | None = None,
    ):
        """``online``: called with each batch's departures and cancellations once its file is
        written (the online store's airport state); its failures are logged, never stop the lake."""
        self.bootstrap, self.store, self.config, self.online = bootstrap, store, config, online
        self.written_batches = 0
        self._broker_down_since: float | None = None
        self._consumer: Consumer | None = None
        self._next: dict[int, int] = {}
        self._status_at = 0.0
        self._behind_logged: dict[int, float] = {}

    # ---------------------------------------------------------------- the service loop

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, restarting from the lake's offsets after any error."""
        log.info("stream sink starting: %s from %s into %s", self.config.topic, self.bootstrap, self.store.url)
        delay = self.config.retry_initial_seconds
        while not stop.is_set():
            written = self.written_batches
            try:
                self._consume(stop)
                return
            except Exception as e:  # noqa: BLE001 - any failure: start again from what the lake holds
                if self.written_batches > written:  # it had been working: a new trouble, a short wait
                    delay = self.config.retry_initial_seconds
                log.error("stream sink: %s; starting again from the lake's offsets in %.1f s", e, delay)
                stop.wait(delay)
                delay = min(delay * 2, self.config.retry_max_seconds)

    def _consume(self, stop: threading.Event) -> None:
        for path in offset_log.orphan_dead_letters(self.store, self.config.topic):
            log.info("removing %s: its batch was never committed", path)
            self.store.delete(path)
        lake = offset_log.lake_offsets(self.store, self.config.topic)
        consumer = Consumer(self._consumer_config())
        self._consumer = consumer
        try:
            partitions = self._partitions(consumer)
            self._next = {p: lake[p].next_offset for p in partitions if p in lake}
            consumer.assign(
                [TopicPartition(self.config.topic, p, self._next.get(p, OFFSET_BEGINNING)) for p in partitions]
            )
            log.info(
                "stream sink consuming %s from %s into %s, from offsets %s",
                self.config.topic,
                self.bootstrap,
                self.store.url,
                {p: self._next.get(p, "beginning") for p in partitions},
            )
            buffers = {p: _Buffer(self._next.get(p)) for p in partitions}
            while not stop.is_set():
                for message in consumer.consume(num_messages=5000, timeout=0.1):
                    self._take(message, buffers)
                now = time.monotonic()
                for p, buffer in buffers.items():
                    if buffer.size and (
                        buffer.size >= self.config.max_batch_messages
                        or now - buffer.since >= self.config.max_batch_seconds
                    ):
                        self._flush(p, buffer)
                if now - self._status_at >= self.config.status_every_seconds:
                    self._publish_status(consumer, partitions)
            for p, buffer in buffers.items():
                if buffer.size:
                    self._flush(p, buffer)
            self._publish_status(consumer, partitions)
        finally:
            self._consumer = None
            consumer.close()

    def _consumer_config(self) -> dict:
        return {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.config.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",  # never jump over offsets the broker no longer has
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 100,
            "socket.connection.setup.timeout.ms": 5000,
            "reconnect.backoff.ms": 200,
            "reconnect.backoff.max.ms": 5000,
            "error_cb": self._on_client_error,
            "logger": logging.getLogger("ml_platform.stream.kafka"),
        }

    def _partitions(self, consumer: Consumer) -> list[int]:
        try:
            metadata = consumer.list_topics(self.config.topic, timeout=5)
        except KafkaException as e:
            raise SinkError(f"Kafka broker at {self.bootstrap} is unreachable ({e.args[0].str()})") from None
        topic = metadata.topics.get(self.config.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            why = topic.error.str() if topic is not None and topic.error is not None else "no partitions"
            raise SinkError(f"topic {self.config.topic!r} is not available at {self.bootstrap} ({why})")
        return sorted(topic.partitions)

    def _on_client_error(self, error: KafkaError) -> None:
        if error.code() in _BROKER_DOWN:
            if self._broker_down_since is None:
                self._broker_down_since = time.monotonic()
                log.error(
                    "Kafka broker at %s unreachable (%s); reconnecting with backoff, nothing is skipped",
                    self.bootstrap,
                    error.str(),
                )
        elif error.fatal():
            log.error("Kafka client error (fatal): %s", error.str())
        else:
            log.warning("Kafka client error: %s", error.str())

    # ---------------------------------------------------------------- messages and batches

    def _take(self, message: Message, buffers: dict[int, _Buffer]) -> None:
        error = message.error()
        if error is not None:
            if error.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
                raise SinkError(
                    f"partition {message.partition()}: the broker no longer has the offset after the lake's last "
                    f"({error.str()}); its log was truncated or reset. Nothing is skipped: restore the broker's "
                    f"log, or move the lake's files of this partition aside to start over"
                )
            if error.code() in _BROKER_DOWN:
                return self._on_client_error(error)
            raise SinkError(f"consuming {self.config.topic}: {error.str()}")
        if self._broker_down_since is not None:
            log.info(
                "Kafka broker at %s reachable again after %.1f s",
                self.bootstrap,
                time.monotonic() - self._broker_down_since,
            )
            self._broker_down_since = None
        buffer = buffers[message.partition()]
        offset = message.offset()
        expected = buffer.last + 1 if buffer.last is not None else buffer.start
        if expected is not None and offset < expected:
            log.warning("partition %d: offset %d again (already at %d), ignored", message.partition(), offset, expected)
            return
        if buffer.start is None:
            buffer.start = offset
        if buffer.since is None:
            buffer.since = time.monotonic()
        lineage = (self.config.topic, message.partition(), offset, _timestamp(message))
        value = message.value() or b""
        event = parse_event(value)
        if isinstance(event, FlightEvent):
            buffer.events.append(tuple(getattr(event, f) for f in FIELD_NAMES) + lineage)
            if self.online is not None and event.kind in ("departed", "cancelled"):
                buffer.online.append(event)
        else:
            buffer.dead.append(lineage + (message.key(), value, event))
        buffer.last = offset

    def _flush(self, partition: int, buffer: _Buffer) -> None:
        """Write the buffer as the batch of offsets start..last: dead letters first, the batch file last."""
        first, last, topic = buffer.start, buffer.last, self.config.topic
        now = dt.datetime.now(dt.UTC)
        if buffer.dead:
            dead = pl.DataFrame([row + (now,) for row in buffer.dead], schema=DEAD_LETTER_SCHEMA, orient="row")
            self.store.write_bytes(offset_log.dead_letter_path(partition, first, last, topic), _parquet(dead))
            for row in buffer.dead:
                log.warning("partition %d offset %d dead-lettered: %s", partition, row[2], row[6])
        events = pl.DataFrame([row + (now,) for row in buffer.events], schema=LAKE_EVENT_SCHEMA, orient="row")
        self.store.write_bytes(offset_log.batch_path(partition, first, last, topic), _parquet(events))
        self.written_batches += 1
        self._next[partition] = last + 1
        online, buffer.online = buffer.online, []
        buffer.start, buffer.events, buffer.dead, buffer.last, buffer.since = last + 1, [], [], None, None
        if online:
            try:
                self.online(online)
            except Exception as e:  # noqa: BLE001 - the lake is the record; the next push covers the gap
                log.warning("partition %d offsets %d..%d not sent to the online store: %s", partition, first, last, e)
        if self._consumer is not None:  # for lag tools only
            try:
                self._consumer.commit(offsets=[TopicPartition(topic, partition, last + 1)], asynchronous=True)
            except KafkaException as e:
                log.debug("offset commit for lag monitoring failed: %s", e)

    def _publish_status(self, consumer: Consumer, partitions: list[int]) -> None:
        """Write the lag per partition, from the high watermarks that came with fetched messages.

        (A ListOffsets request would do on a real Kafka, but Tansu answers it wrongly.)
        A broker whose log ends before the lake's offsets lost messages: reported, never skipped.
        """
        self._status_at = time.monotonic()
        status = {
            "updated_at": dt.datetime.now(dt.UTC).isoformat(),
            "bootstrap": self.bootstrap,
            "group_id": self.config.group_id,
            "broker_reachable": self._broker_down_since is None,
            "partitions": {},
        }
        for p in partitions:
            _low, high = consumer.get_watermark_offsets(TopicPartition(self.config.topic, p), cached=True)
            lake_next = self._next.get(p, 0)
            known = high is not None and high >= 0
            status["partitions"][str(p)] = {
                "lake_next_offset": lake_next,
                "high_watermark": high if known else None,
                "lag": max(high - lake_next, 0) if known else None,
            }
            if known and high < lake_next and time.monotonic() - self._behind_logged.get(p, -1e9) > 30:
                self._behind_logged[p] = time.monotonic()
                log.error(
                    "partition %d: the broker's log ends at offset %d but the lake already holds up to %d: the "
                    "broker lost messages (was its log reset?). Waiting; nothing is overwritten or skipped",
                    p,
                    high,
                    lake_next - 1,
                )
        try:
            offset_log.write_status(self.store, status, self.config.topic)
        except OSError as e:
            log.warning("could not write the sink status: %s", e)


def _parquet(frame: pl.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.write_parquet(out, compression="zstd", statistics=True)
    return out.getvalue()


def run_sink(
    bootstrap: str,
    lake_url: str,
    *,
    config: SinkConfig = SinkConfig(),
    stop: threading.Event | None = None,
    store_factory: Callable[[str], Store] = open_store,
    online: Callable[[list[FlightEvent]], None] | None = None,
) -> None:
    """Run the lake sink until SIGTERM/SIGINT (in the main thread) or until ``stop`` is set."""
    stop = stop or threading.Event()

    def on_signal(signum, _frame) -> None:
        log.info("signal %d: writing what is buffered, then stopping", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
    sink = LakeSink(bootstrap, store_factory(lake_url), config, online)
    sink.run(stop)
    log.info("stream sink stopped after %d batch files", sink.written_batches)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the flight_events topic into the lake, exactly once.")
    parser.add_argument("--bootstrap", default=bootstrap_from_env(), help="host:port (default: the env setting)")
    parser.add_argument("--lake", required=True, help="the lake: a folder or s3://bucket/prefix")
    parser.add_argument("--topic", default=TOPIC)
    parser.add_argument("--max-batch-messages", type=int, default=SinkConfig.max_batch_messages)
    parser.add_argument("--max-batch-seconds", type=float, default=SinkConfig.max_batch_seconds)
    parser.add_argument("--retry-max-seconds", type=float, default=SinkConfig.retry_max_seconds)
    parser.add_argument("--redis-url", help="also update the online store's airport state (with --key-prefix)")
    parser.add_argument("--key-prefix", help="the online store's key prefix (the data home's)")
    args = parser.parse_args(argv)
    if not args.bootstrap:
        parser.error("no broker: pass --bootstrap or set ML_PLATFORM_KAFKA_BOOTSTRAP")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = SinkConfig(
        topic=args.topic,
        max_batch_messages=args.max_batch_messages,
        max_batch_seconds=args.max_batch_seconds,
        retry_max_seconds=args.retry_max_seconds,
    )
    online = None
    if args.redis_url:
        from ml_platform.serving.online_store import OnlineStore, OnlineStoreSettings, airport_events

        store = OnlineStore(OnlineStoreSettings(args.redis_url, args.key_prefix or "ml_platform"))

        def online(events: list[FlightEvent]) -> None:
            store.record_events(airport_events(events))

    run_sink(args.bootstrap, args.lake, config=config, online=online)


if __name__ == "__main__":
    main()
