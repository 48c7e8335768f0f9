"""Latency and throughput of the prediction service, measured from a client on 127.0.0.1 (for ``make bench``).

Every loop is bounded by a count and a time; nothing here asserts a number.

    http_latency(url + "/predict", predict_body(flights[:1]))   # p50/p99 of one flight
    http_throughput(url + "/predict", body, clients=4)          # requests/s, 4 concurrent clients
    in_process_latency(pipeline, rows)                          # predict_proba alone: the floor
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Latency:
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    def to_dict(self) -> dict:
        return asdict(self)


def _stats(times: list[float], errors: int) -> Latency:
    if not times:
        return Latency(0, errors, float("nan"), float("nan"), float("nan"), float("nan"))
    ordered = sorted(times)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] * 1000

    return Latency(len(times), errors, pct(0.50), pct(0.99), statistics.fmean(times) * 1000, ordered[-1] * 1000)


def predict_body(flights: list[dict]) -> bytes:
    """The JSON body of ``POST /predict`` for these flights (dicts with the request's fields)."""
    return json.dumps(
        {"flights": [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in f.items()} for f in flights]}
    ).encode()


class _Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        self.path = parts.path or "/"
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)

    def post(self, body: bytes) -> int:
        self.conn.request("POST", self.path, body=body, headers={"Content-Type": "application/json"})
        response = self.conn.getresponse()
        response.read()
        return response.status

    def close(self) -> None:
        self.conn.close()


def http_latency(url: str, body: bytes, *, requests: int = 300, warmup: int = 20, max_seconds: float = 60.0) -> Latency:
    """Sequential requests on one connection: latency as one client sees it (non-200 answers are errors)."""
    client = _Client(url)
    try:
        for _ in range(warmup):
            client.post(body)
        times, errors = [], 0
        deadline = time.monotonic() + max_seconds
        for _ in range(requests):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            status = client.post(body)
            elapsed = time.perf_counter() - started
            if status == 200:
                times.append(elapsed)
            else:
                errors += 1
        return _stats(times, errors)
    finally:
        client.close()


def http_throughput(
    url: str, body: bytes, *, clients: int = 4, seconds: float = 5.0, max_requests: int = 100_000
) -> dict:
    """``clients`` threads posting back to back for ``seconds``: requests/s and the latency under that load."""
    times: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    per_client = max_requests // clients

    def run(i: int) -> None:
        client = _Client(url)
        try:
            client.post(body)  # connect and warm up outside the measured window
            start.wait()
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and len(times[i]) + errors[i] < per_client:
                began = time.perf_counter()
                if client.post(body) == 200:
                    times[i].append(time.perf_counter() - began)
                else:
                    errors[i] += 1
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join(seconds + 60)
    elapsed = time.perf_counter() - began
    every = [x for part in times for x in part]
    stats = _stats(every, sum(errors))
    return {
        "clients": clients,
        "seconds": round(elapsed, 3),
        "requests_per_second": len(every) / elapsed,
        **stats.to_dict(),
    }


def in_process_latency(
    pipeline, rows, *, build_frame: bool = False, repeats: int = 300, max_seconds: float = 60.0
) -> Latency:
    """``predict_proba`` on feature rows in this process with one OpenMP thread, as the service scores:
    the floor under any HTTP number. ``rows``: dicts or a polars frame of ``features.flight_features``.
    With ``build_frame`` each call also builds the model's input frame from the rows (``features_frame``)."""
    from threadpoolctl import threadpool_limits

    from ml_platform.serving.scoring import features_frame

    columns = list(pipeline.feature_names_in_)
    rows = rows.to_dicts() if hasattr(rows, "to_dicts") else list(rows)
    frame = features_frame(rows, columns)
    times = []
    deadline = time.monotonic() + max_seconds
    with threadpool_limits(limits=1, user_api="openmp"):
        pipeline.predict_proba(frame)
        for _ in range(repeats):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            pipeline.predict_proba(features_frame(rows, columns) if build_frame else frame)
            times.append(time.perf_counter() - started)
    return _stats(times, 0)
