"""Wall time and peak memory of named stages, with progress lines.

Peak memory is the largest summed RSS of this process and all its children (the
MLflow server the platform starts, for instance), sampled by a background thread
every ``interval`` seconds with psutil. A peak shorter than the interval can be
missed; ``ru_maxrss`` (this process alone, exact) is recorded next to it as a check.

    watch = Stopwatch("x1 (b) duckdb")
    with watch.stage("lake", rows=336_776):
        ...
    watch.results()   # [{"stage", "seconds", "rows", "rows_per_second", "peak_rss_bytes"}, ...]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

T0_ENV = "BENCH_T0"  # epoch seconds at which the whole benchmark started, for elapsed times


def elapsed() -> float:
    """Seconds since the benchmark started (this process's start when run alone)."""
    return time.time() - float(os.environ.setdefault(T0_ENV, str(time.time())))


def progress(message: str) -> None:
    """One progress line, prefixed with the benchmark's elapsed time, flushed at once."""
    print(f"[{elapsed():7.1f}s] {message}", file=sys.stdout, flush=True)


def gib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GB"


def tree_rss(root: psutil.Process) -> int:
    """RSS of ``root`` and all its descendants, in bytes (processes that vanish count as 0)."""
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


class TreeRssSampler:
    """Samples the process tree's summed RSS in a daemon thread; ``take_peak()`` restarts the window."""

    def __init__(self, pid: int | None = None, interval: float = 0.2):
        self._root = psutil.Process(pid or os.getpid())
        self._interval = interval
        self._lock = threading.Lock()
        self._peak = tree_rss(self._root)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def sample(self) -> int:
        rss = tree_rss(self._root)
        with self._lock:
            self._peak = max(self._peak, rss)
        return rss

    def take_peak(self) -> int:
        """The peak since the last call (one last sample included); the next window starts now."""
        current = self.sample()
        with self._lock:
            peak, self._peak = self._peak, current
        return peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class StageResult:
    stage: str
    seconds: float
    rows: int | None
    peak_rss_bytes: int | None

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.seconds if self.rows and self.seconds > 0 else None

    def to_dict(self) -> dict:
        return {**asdict(self), "rows_per_second": self.rows_per_second}


class Stopwatch:
    """Times stages one after another and records each stage's peak tree RSS."""

    def __init__(self, label: str, interval: float = 0.2):
        self.label = label
        self.sampler = TreeRssSampler(interval=interval)
        self.stages: list[StageResult] = []

    @contextmanager
    def stage(self, name: str, rows: int | None = None) -> Iterator[None]:
        progress(f"{self.label}: {name} ...")
        self.sampler.take_peak()
        started = time.perf_counter()
        yield
        result = StageResult(name, time.perf_counter() - started, rows, self.sampler.take_peak())
        self.stages.append(result)
        rate = f", {result.rows_per_second:,.0f} rows/s" if result.rows_per_second else ""
        progress(f"{self.label}: {name} done in {result.seconds:.1f}s{rate}, peak {gib(result.peak_rss_bytes)}")

    def results(self) -> dict:
        """Every stage, and this process's own high-water mark (``ru_maxrss``, exact)."""
        self.sampler.stop()
        maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        return {
            "stages": [s.to_dict() for s in self.stages],
            "process_maxrss_bytes": maxrss_kib * 1024,
        }


@dataclass
class GuardedRun:
    returncode: int | None
    peak_rss_bytes: int
    problem: str | None  # why it was stopped, if it was
    log_tail: str


def _kill_tree(pid: int) -> None:
    """SIGKILL a process we started and every process below it (an MLflow server, say)."""
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def run_guarded(cmd: list[str], log: Path, min_available_gb: float) -> GuardedRun:
    """Run ``cmd`` (stdout shared, stderr to ``log``), sampling its tree's RSS; stop it if the
    machine's available memory falls under ``min_available_gb`` (the machine is shared)."""
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(cmd, stderr=stderr, env=os.environ.copy())
    sampler = TreeRssSampler(proc.pid, interval=0.5)
    problem: str | None = None
    while proc.poll() is None:
        available = psutil.virtual_memory().available
        if available < min_available_gb * 2**30:
            problem = (
                f"stopped: the machine had {gib(available)} available (floor {min_available_gb} GB) "
                f"with this process tree at {gib(sampler.sample())}"
            )
            _kill_tree(proc.pid)
            proc.wait()
            break
        time.sleep(0.25)
    peak = sampler.take_peak()
    sampler.stop()
    tail = log.read_text(errors="replace")[-3000:] if proc.returncode or problem else ""
    return GuardedRun(proc.returncode, peak, problem, tail)
