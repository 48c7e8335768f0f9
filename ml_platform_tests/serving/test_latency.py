"""The numbers ``make bench`` reports for the prediction service, measured by its helpers against the real
service (Redis read + scoring over HTTP on 127.0.0.1) and in process (the floor). Timings depend on the
machine and its load: they are printed, never asserted; the test checks the helpers measure what they say."""

from __future__ import annotations

import polars as pl
import pytest

from ml_platform.io import registry
from ml_platform.serving.bench import http_latency, http_throughput, in_process_latency, predict_body

from .conftest import SCORED_DAY
from .test_service import flights_of, served  # noqa: F401 - the running service fixture

pytestmark = pytest.mark.slow


def test_latency_helpers_measure_the_service(served, replayed, mlflow_server):  # noqa: F811
    service, _ = served
    flights = flights_of(replayed, SCORED_DAY)
    url = f"{service.url}/predict"
    one = http_latency(url, predict_body(flights[:1]), requests=300)
    hundred = http_latency(url, predict_body(flights[:100]), requests=60)
    load = http_throughput(url, predict_body(flights[:1]), clients=4, seconds=3.0)
    pipeline = registry.ModelRegistry(mlflow_server).load_model("champion")
    rows = replayed.rows(SCORED_DAY)
    floor_one = in_process_latency(pipeline, rows.head(1), repeats=300)
    floor_hundred = in_process_latency(pipeline, rows.head(100), repeats=60)
    framed_one = in_process_latency(pipeline, rows.head(1), build_frame=True, repeats=300)
    assert (one.requests, one.errors, hundred.requests, hundred.errors) == (300, 0, 60, 0)
    assert load["errors"] == 0 and load["requests_per_second"] > 0 and load["clients"] == 4
    assert 0 < floor_one.p50_ms <= floor_one.p99_ms and 0 < one.p50_ms <= one.p99_ms <= one.max_ms
    assert isinstance(rows, pl.DataFrame)
    print(
        "\nprediction service on this machine (ms):"
        f"\n  HTTP 1 flight       p50 {one.p50_ms:6.2f}  p99 {one.p99_ms:6.2f}"
        f"\n  HTTP 100 flights    p50 {hundred.p50_ms:6.2f}  p99 {hundred.p99_ms:6.2f}"
        f"\n  4 clients, 1 flight {load['requests_per_second']:6.0f} req/s"
        f"  p50 {load['p50_ms']:.2f}  p99 {load['p99_ms']:.2f}"
        f"\n  in-process 1 row    p50 {floor_one.p50_ms:6.2f}  p99 {floor_one.p99_ms:6.2f}"
        f"\n  in-process 100 rows p50 {floor_hundred.p50_ms:6.2f}  p99 {floor_hundred.p99_ms:6.2f}"
        f"\n  in-process 1 row + frame  p50 {framed_one.p50_ms:6.2f}  p99 {framed_one.p99_ms:6.2f}"
    )
