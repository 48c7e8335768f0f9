"""The online path for ``make bench``: the stream into the lake, and the prediction service (issues #18, #19).

Stream: the embedded broker (Tansu) and the lake sink as `make run` starts them, 10,000 real flight
events from 2013-01-08 on sent at a steady rate; reported: produce-to-lake latency p50/p95 (goal: p95
under 5 s) and the events/s the lake took.

Serving: 2013-07-01..07-11 of the real data built into a warehouse with the platform's code, a
model trained on 07-01..07-09 and registered in an MLflow store of its own, 07-11's features (1,006
flights) pushed to Redis under a key prefix of its own (deleted afterwards), and `ml-platform serve`
on a free loopback port. Reported side by side: HTTP p50/p99 for 1 and 100 flights (goal: p99 under
20 ms for one flight, Redis read included), requests/s with 4 clients, `predict_proba` in process
(the floor), and `mlflow models serve` on the same model (what a user would run instead; it is
given the features, so it does less work than the service).

    python -m benchmarks.online --work DIR --result RESULT.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from benchmarks.measure import progress
from ml_platform.settings import REPO_ROOT

STREAM_EVENTS, STREAM_RATE = 10_000, 1_000
FIRST, TRAINED_TO, SCORED = dt.date(2013, 7, 1), dt.date(2013, 7, 9), dt.date(2013, 7, 11)
REDIS_URL = os.environ.get("ML_PLATFORM_REDIS_URL", "redis://127.0.0.1:6379/11")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cmd: list[str], log: Path, port: int, timeout: float = 120, env: dict | None = None) -> subprocess.Popen:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=REPO_ROOT
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.2)
    _stop(proc)
    raise TimeoutError(f"{' '.join(cmd[:3])} not listening on {port} after {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def stream(work: Path) -> dict:
    from ml_platform.io.store import open_store
    from ml_platform.stream.broker import EmbeddedBroker, ensure_topic
    from ml_platform.stream.latency import measure_latency
    from ml_platform.stream.producer import replay_events

    broker = EmbeddedBroker(work / "broker").start()
    sink = None
    try:
        ensure_topic(broker.bootstrap)
        lake = open_store(str(work / "lake"))
        cmd = [sys.executable, "-m", "ml_platform.stream.sink", "--bootstrap", broker.bootstrap, "--lake", lake.url]
        with open(work / "sink.log", "wb") as out:
            sink = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        events = replay_events(dt.date(2013, 1, 8), 6)[:STREAM_EVENTS]
        report = measure_latency(broker.bootstrap, lake, events, rate=STREAM_RATE)
    finally:
        if sink is not None:
            _stop(sink)
        broker.stop()
    return {"events": report.events, "rate_sent": STREAM_RATE, **{k: round(v, 3) for k, v in vars(report).items()}}


def _train(conn, tracking_uri: str, lake: str):
    from threadpoolctl import threadpool_limits

    from ml_platform.domain.features import TABLE
    from ml_platform.io import registry
    from ml_platform.pipeline import model

    frame = conn.execute(
        f"SELECT * FROM {TABLE} WHERE flight_date BETWEEN $f AND $l", {"f": FIRST, "l": TRAINED_TO}
    ).pl()
    with threadpool_limits(limits=1):
        trained = model.train(frame, holdout_days=0, seed=1)
    models = registry.ModelRegistry(tracking_uri)
    logged = models.log_training(
        pipeline=trained.pipeline,
        input_example=model.to_pandas_features(frame.head(5), trained.feature_columns),
        params={"seed": 1},
        metrics=trained.metrics,
        plots={},
        dataset={
            "name": "flight_features",
            "digest": uuid.uuid4().hex,
            "source": f"{lake}/training_set.parquet",
            "rows": frame.height,
            "first_day": str(FIRST),
            "last_day": str(TRAINED_TO),
        },
        tags={registry.TAG_TRAINING_CUTOFF: str(trained.cutoff), "threshold": str(trained.threshold)},
        pip_requirements=["scikit-learn", "pandas", "numpy"],
    )
    models.set_alias("champion", logged.version)
    return models.load_model("champion"), trained.feature_columns


def serving(work: Path) -> dict:
    import duckdb

    from ml_platform.devdata.offline_year import build_year_warehouse
    from ml_platform.domain.features import TABLE
    from ml_platform.pipeline.features import build_flight_features
    from ml_platform.pipeline.model import to_pandas_features
    from ml_platform.serving.bench import http_latency, http_throughput, in_process_latency, predict_body
    from ml_platform.serving.online_store import FlightSelection, OnlineStore, OnlineStoreSettings, push_flight_features

    conn = duckdb.connect(str(work / "warehouse.duckdb"))
    build_year_warehouse(conn, work / "lake", FIRST, SCORED)
    build_flight_features(conn, FIRST, SCORED)
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
    pipeline, columns = _train(conn, tracking_uri, str(work / "lake"))
    rows = conn.execute(f"SELECT * FROM {TABLE} WHERE flight_date = $d ORDER BY ALL", {"d": SCORED}).pl()
    store = OnlineStore(OnlineStoreSettings(REDIS_URL, f"bench:{uuid.uuid4().hex[:12]}", ttl_seconds=3600))
    push_flight_features(store, conn, FlightSelection.days(SCORED, SCORED))
    flights = rows.select("carrier", "flight", "origin", "dest", "flight_date", "sched_dep_time").to_dicts()
    result: dict = {"flights_pushed": rows.height}
    port = _free_port()
    cmd = [sys.executable, "-m", "ml_platform.serving", "--redis-url", REDIS_URL, "--key-prefix", store.settings.prefix]
    cmd += ["--tracking-uri", tracking_uri, "--lake-url", str(work / "served"), "--port", str(port)]
    service = _start([*cmd, "--log-level", "warning"], work / "service.log", port)
    try:
        url = f"http://127.0.0.1:{port}/predict"
        one, hundred = predict_body(flights[:1]), predict_body(flights[:100])
        result["service_1"] = http_latency(url, one, requests=500).to_dict()
        result["service_100"] = http_latency(url, hundred, requests=100).to_dict()
        result["service_4_clients"] = http_throughput(url, one, clients=4, seconds=5.0)
    finally:
        _stop(service)
        store.delete_all()
        store.close()
    result["in_process_1"] = in_process_latency(pipeline, rows.head(1), repeats=500).to_dict()
    result["in_process_100"] = in_process_latency(pipeline, rows.head(100), repeats=100).to_dict()
    result["mlflow_models_serve"] = _mlflow_models_serve(work, tracking_uri, to_pandas_features(rows, columns))
    conn.close()
    return result


def _mlflow_models_serve(work: Path, tracking_uri: str, features) -> dict:
    """`mlflow models serve` of the champion, given the features themselves (it has no feature store)."""
    from ml_platform.serving.bench import http_latency

    port = _free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow), "models", "serve", "-m", "models:/flight_delay_classifier@champion", "--env-manager", "local"]
    path = f"{mlflow.parent}{os.pathsep}{os.environ.get('PATH', '')}"  # it execs `uvicorn` from PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "OMP_NUM_THREADS": "1", "PATH": path}
    try:
        server = _start([*cmd, "-h", "127.0.0.1", "-p", str(port)], work / "mlflow_serve.log", port, env=env)
    except (RuntimeError, TimeoutError) as e:
        return {"skipped": f"mlflow models serve did not start: {str(e)[-300:]}"}
    try:
        url = f"http://127.0.0.1:{port}/invocations"
        split = json.loads(features.head(1).to_json(orient="split", date_format="iso"))
        body = json.dumps({"dataframe_split": split}).encode()
        split_100 = json.loads(features.head(100).to_json(orient="split", date_format="iso"))
        return {
            "1": http_latency(url, body, requests=300).to_dict(),
            "100": http_latency(url, json.dumps({"dataframe_split": split_100}).encode(), requests=100).to_dict(),
        }
    finally:
        _stop(server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    result = {}
    for name, measure in (("stream", stream), ("serving", serving)):
        progress(f"online: {name}")
        folder = args.work / name
        folder.mkdir(exist_ok=True)
        try:
            result[name] = measure(folder)
        except Exception as e:  # noqa: BLE001 - one part failing is reported, the other still measured
            result[name] = {"failed": f"{type(e).__name__}: {e}"[:1000]}
    args.result.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
