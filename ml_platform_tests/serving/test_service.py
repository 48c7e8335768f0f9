"""The prediction service as its own uvicorn process, against real Redis and a real MLflow server.

* No training-serving skew: 1,000 flights of a replayed real day (2013-07-11) are answered over
  HTTP with the probabilities batch scoring writes to ``ml.predictions`` for the same model
  version (computed as ``flight_predictions`` does), to 1e-9, with the same class and known_at.
* Every bad input answers a 4xx with a reason and no stack trace.
* Redis down answers 503 with the reason; the service recovers by itself when Redis returns.
* Moving the ``champion`` alias changes the version that answers within 30 s.
* Every answer is logged to the lake, on a timer and at shutdown.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import requests

from ml_platform.domain.features import KNOWN_AT_COLUMNS, TABLE
from ml_platform.io import registry
from ml_platform.pipeline import model
from ml_platform.pipeline import predictions as pr
from ml_platform.pipeline.warehouse.common import read_days
from ml_platform.serving.online_store import (
    FlightKey,
    FlightSelection,
    OnlineStore,
    OnlineStoreSettings,
    push_flight_features,
)
from ml_platform.serving.prediction_log import read_log
from ml_platform_tests.conftest import free_port, stop_process, wait_for_port

from .conftest import SCORED_DAY, start_service, unique_prefix

pytestmark = pytest.mark.slow
KEY = ["flight_date", "carrier", "flight", "origin", "sched_dep_time"]


def flights_of(replayed, day: dt.date) -> list[dict]:
    return [
        {"carrier": c, "flight": f, "origin": o, "dest": d, "flight_date": str(day), "sched_dep_time": s}
        for c, f, o, d, s in replayed.conn.execute(
            f"SELECT carrier, flight, origin, dest, sched_dep_time FROM {TABLE} WHERE flight_date = $d "
            "ORDER BY carrier, flight, origin, sched_dep_time",
            {"d": day},
        ).fetchall()
    ]


@pytest.fixture(scope="module")
def served(redis_url, replayed, models, mlflow_server, tmp_path_factory):  # noqa: F811
    """SCORED_DAY pushed under a fresh prefix, the service running on it with the first model as champion."""
    store = OnlineStore(OnlineStoreSettings(redis_url, unique_prefix(), ttl_seconds=3600))
    push_flight_features(store, replayed.conn, FlightSelection.days(SCORED_DAY, SCORED_DAY))
    folder = tmp_path_factory.mktemp("service")
    service = start_service(
        redis_url=redis_url,
        prefix=store.settings.prefix,
        tracking_uri=mlflow_server,
        lake=str(folder / "lake"),
        folder=folder,
    )
    try:
        yield service, store
    finally:
        stop_process(service.proc)
        store.delete_all()
        store.close()


def post(url: str, body, **kwargs) -> requests.Response:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    headers = kwargs.pop("headers", {"Content-Type": "application/json"})
    return requests.post(f"{url}/predict", data=data, headers=headers, timeout=60, **kwargs)


def test_health_docs_and_one_threaded_scoring(served, models):
    service, store = served
    health = requests.get(f"{service.url}/health", timeout=30)
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["status"] == "ok" and body["reasons"] == []
    assert body["model_version"] == models[0].version
    assert body["model"]["training_cutoff"] == str(models[0].cutoff)
    assert body["redis"]["ok"] is True and body["redis"]["key_prefix"] == store.settings.prefix
    assert body["redis"]["last_push"]["flights"] == 1006
    assert body["scoring_openmp_threads"] == 1
    docs = requests.get(f"{service.url}/docs", timeout=10)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = requests.get(f"{service.url}/openapi.json", timeout=10).json()
    assert {"/predict", "/health"} <= set(schema["paths"])
    assert "sched_dep_time" in json.dumps(schema["components"]["schemas"]["Flight"])


def test_no_skew_1000_flights_of_a_replayed_day_score_as_batch_scoring_does(served, replayed, models, mlflow_server):  # noqa: F811
    service, _ = served
    flights = flights_of(replayed, SCORED_DAY)[:1000]
    started = time.perf_counter()
    answer = post(service.url, {"flights": flights})
    seconds = time.perf_counter() - started
    assert answer.status_code == 200, answer.text[:2000]
    online = answer.json()
    assert online["model_version"] == models[0].version and len(online["predictions"]) == 1000

    # Batch scoring, exactly as flight_predictions does it, into a real ml.predictions table.
    info = registry.ModelRegistry(mlflow_server).model_version_info("champion")
    pipeline = registry.ModelRegistry(mlflow_server).load_model("champion")
    version, threshold = int(info.version), float(info.tags.get("threshold", 0.5))
    assert version == models[0].version and SCORED_DAY > info.training_cutoff
    rows = read_days(replayed.conn, TABLE, "flight_date", SCORED_DAY, SCORED_DAY)
    expected = list(pipeline.feature_names_in_)
    proba = pipeline.predict_proba(model.to_pandas_features(rows, expected))[:, 1]
    scored = (
        rows.select(*pr.KEY, "predicted_at")
        .with_columns(
            pl.lit(version, dtype=pl.Int32).alias("model_version"),
            pl.Series("probability", proba, dtype=pl.Float64),
            pl.lit(threshold).alias("threshold"),
            pl.lit(dt.datetime.now(dt.UTC)).alias("scored_at"),
        )
        .with_columns((pl.col("probability") >= threshold).alias("predicted_class"))
    )
    pr.write_predictions(replayed.conn, scored, [SCORED_DAY], version)
    batch = replayed.conn.execute(
        f"SELECT p.*, {', '.join(f'f.{c}' for c in KNOWN_AT_COLUMNS)} FROM {pr.PREDICTIONS} p "
        f"JOIN {TABLE} f USING ({', '.join(KEY)}) WHERE p.flight_date = $d AND p.model_version = $v",
        {"d": SCORED_DAY, "v": version},
    ).pl()
    fields = (
        "carrier",
        "flight",
        "origin",
        "sched_dep_time",
        "probability",
        "predicted_class",
        "threshold",
        "model_version",
        "predicted_at",
    )
    served_rows = pl.DataFrame(
        [
            {
                **{k: p[k] for k in fields},
                "flight_date": dt.date.fromisoformat(p["flight_date"]),
                **{f"online_{c}": p["known_at"][c] for c in KNOWN_AT_COLUMNS},
            }
            for p in online["predictions"]
        ]
    )
    both = served_rows.join(batch, on=KEY, how="inner", suffix="_batch")
    assert both.height == 1000
    gap = (both["probability"] - both["probability_batch"]).abs().max()
    assert gap <= 1e-9, gap
    assert (both["predicted_class"] == both["predicted_class_batch"]).all()
    assert (both["threshold"] == both["threshold_batch"]).all() and (both["model_version"] == version).all()
    for c in (*KNOWN_AT_COLUMNS, "predicted_at"):
        online_times = both[f"online_{c}" if c != "predicted_at" else c].to_list()
        offline_times = both[c if c != "predicted_at" else "predicted_at_batch"].to_list()
        assert [None if t is None else dt.datetime.fromisoformat(t) for t in online_times] == offline_times, c
    assert 0.02 < float(np.mean(proba)) < 0.9
    print(f"\n1,000 flights over HTTP: {seconds * 1000:.0f} ms; largest probability gap {gap:.1e}")


def _flight(replayed, n: int = -1) -> dict:
    return flights_of(replayed, SCORED_DAY)[n]


BAD = [
    # (what, body or callable(flight) -> body, status, words in the reason)
    ("malformed JSON", b'{"flights": [', 422, "malformed JSON"),
    ("not JSON at all", b"flights=1", 422, "malformed JSON"),
    ("a list instead of an object", [], 422, "body"),
    ("no flights", {"flights": []}, 422, "flights"),
    ("an unknown field", lambda f: {"flights": [{**f, "tail": "N1"}]}, 422, "flights.0.tail"),
    ("a missing field", lambda f: {"flights": [{k: v for k, v in f.items() if k != "dest"}]}, 422, "flights.0.dest"),
    ("a flight number as text", lambda f: {"flights": [{**f, "flight": str(f["flight"])}]}, 422, "flights.0.flight"),
    ("a float flight number", lambda f: {"flights": [{**f, "flight": 1.5}]}, 422, "flights.0.flight"),
    ("a time that is not HHMM", lambda f: {"flights": [{**f, "sched_dep_time": 1575}]}, 422, "not an HHMM time"),
    ("a time past 23:59", lambda f: {"flights": [{**f, "sched_dep_time": 2400}]}, 422, "sched_dep_time"),
    ("a date in another format", lambda f: {"flights": [{**f, "flight_date": "07/11/2013"}]}, 422, "flight_date"),
    ("a date as a number", lambda f: {"flights": [{**f, "flight_date": 20130711}]}, 422, "flight_date"),
    ("a lower-case carrier", lambda f: {"flights": [{**f, "carrier": "ua"}]}, 422, "flights.0.carrier"),
    ("an unknown flight", lambda f: {"flights": [{**f, "carrier": "ZZ"}]}, 404, "no features were pushed"),
    ("a day never pushed", lambda f: {"flights": [{**f, "flight_date": "2013-07-12"}]}, 404, "no features were pushed"),
    ("the wrong destination", lambda f: {"flights": [{**f, "dest": "XXX"}]}, 422, "not XXX"),
    ("1,001 flights", lambda f: {"flights": [f] * 1001}, 413, "at most 1000"),
    ("10,000 flights", lambda f: {"flights": [f] * 10_000}, 413, "10000 flights in one request; at most 1000"),
    ("a 3 MB body", lambda f: {"flights": [f], "pad": "x" * 3_000_000}, 413, "larger than the limit"),
]


@pytest.mark.parametrize(("what", "body", "status", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_4xx_with_the_reason(served, replayed, what, body, status, words):
    service, _ = served
    answer = post(service.url, body(_flight(replayed)) if callable(body) else body)
    assert answer.status_code == status, answer.text[:500]
    reason = answer.json()["reason"]
    assert words in reason, reason
    assert "Traceback" not in answer.text and 'File "' not in answer.text


def test_a_streamed_body_above_the_limit_is_refused_before_it_is_parsed(served, replayed):
    service, _ = served
    flight = json.dumps(_flight(replayed)).encode()

    def chunks():  # no Content-Length: requests sends it chunked
        yield b'{"flights": ['
        for _ in range(30_000):
            yield flight + b","
        yield flight + b"]}"

    answer = requests.post(
        f"{service.url}/predict", data=chunks(), headers={"Content-Type": "application/json"}, timeout=60
    )
    assert answer.status_code == 413 and "larger than the limit" in answer.json()["reason"]
    small = requests.post(
        f"{service.url}/predict",
        data=iter([b'{"flights": [', flight, b"]}"]),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert small.status_code == 200, small.text


def test_expired_features_and_partial_answers(served, replayed):
    service, store = served
    gone, kept = _flight(replayed, -1), _flight(replayed, -2)  # not among the 1,000 of the skew test
    store.client.delete(
        store.flight_key(FlightKey(SCORED_DAY, gone["carrier"], gone["flight"], gone["origin"], gone["sched_dep_time"]))
    )
    answer = post(service.url, {"flights": [kept, gone]})
    assert answer.status_code == 404 and "expired" in answer.json()["reason"]
    assert answer.json()["missing"] == [{"flight": gone, "reason": answer.json()["missing"][0]["reason"]}]
    partial = post(service.url, {"flights": [kept, gone]}, params={"partial": "true"})
    assert partial.status_code == 200
    body = partial.json()
    assert [p["flight"] for p in body["predictions"]] == [kept["flight"]]
    assert [m["flight"]["flight"] for m in body["missing"]] == [gone["flight"]]
    assert requests.get(f"{service.url}/predict", timeout=10).status_code == 405


def test_answers_are_logged_to_the_lake(served, replayed):
    service, _ = served
    flights = flights_of(replayed, SCORED_DAY)[:20]
    answer = post(service.url, {"flights": flights}).json()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        logged = read_log(service.lake)
        if answer["request_id"] in set(logged["request_id"].to_list()):
            break
        time.sleep(0.5)
    mine = logged.filter(pl.col("request_id") == answer["request_id"]).sort("carrier", "flight")
    assert mine.height == 20
    assert mine["probability"].to_list() == [p["probability"] for p in answer["predictions"]]
    assert set(mine["model_version"].to_list()) == {answer["model_version"]}
    files = list(Path(service.lake, "raw", "online_predictions", f"date={SCORED_DAY}").glob("*.parquet"))
    assert files and all(not f.name.startswith(".tmp") for f in files)


def _redis_server(port: int, folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for_port(port, proc)
    return proc


def test_redis_down_is_503_and_the_service_recovers_by_itself(replayed, models, mlflow_server, tmp_path):  # noqa: F811
    port = free_port()
    redis_proc = _redis_server(port, tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    store = OnlineStore(OnlineStoreSettings(url, unique_prefix(), ttl_seconds=3600))
    flights = flights_of(replayed, SCORED_DAY)[:5]
    service = None
    try:
        push_flight_features(store, replayed.conn, FlightSelection.days(SCORED_DAY, SCORED_DAY))
        service = start_service(
            redis_url=url,
            prefix=store.settings.prefix,
            tracking_uri=mlflow_server,
            lake=str(tmp_path / "lake"),
            folder=tmp_path,
            flush_seconds=600,
        )
        assert post(service.url, {"flights": flights}).status_code == 200

        stop_process(redis_proc)  # Redis goes away
        started = time.monotonic()
        down = post(service.url, {"flights": flights})
        assert down.status_code == 503, down.text
        assert f"Redis at {url} is unreachable" in down.json()["reason"]
        assert time.monotonic() - started < 5  # fails fast, no minutes of retries
        health = requests.get(f"{service.url}/health", timeout=30)
        assert health.status_code == 503 and health.json()["redis"]["ok"] is False
        assert "unreachable" in health.json()["reasons"][0]

        redis_proc = _redis_server(port, tmp_path)  # back, empty (no persistence)
        missing = post(service.url, {"flights": flights})
        assert missing.status_code == 404, missing.text  # connected again, by itself; the features are gone
        push_flight_features(store, replayed.conn, FlightSelection.days(SCORED_DAY, SCORED_DAY))
        again = post(service.url, {"flights": flights})
        assert again.status_code == 200 and len(again.json()["predictions"]) == 5
        assert requests.get(f"{service.url}/health", timeout=30).status_code == 200
    finally:
        if service is not None:
            stop_process(service.proc)  # SIGINT: the service flushes its answer log on the way out
        stop_process(redis_proc)
    logged = read_log(str(tmp_path / "lake"))
    assert logged.height == 10  # the two answered requests, written at shutdown (the timer is 600 s)
    assert "Traceback" not in service.log_text()  # an outage is an answer, not a crash


def test_moving_the_champion_alias_swaps_the_model_within_30_seconds(served, replayed, models, mlflow_server):  # noqa: F811
    service, _ = served
    first, second = models
    flight = flights_of(replayed, SCORED_DAY)[0]
    assert post(service.url, {"flights": [flight]}).json()["model_version"] == first.version
    registry.ModelRegistry(mlflow_server).set_alias("champion", second.version)
    moved = time.monotonic()
    try:
        while True:
            answer = post(service.url, {"flights": [flight]})
            assert answer.status_code == 200  # answers go on during the swap
            if answer.json()["model_version"] == second.version:
                break
            assert time.monotonic() - moved < 30, "the service still answers with the old version after 30 s"
            time.sleep(0.5)
        swap_seconds = time.monotonic() - moved
        prediction = answer.json()["predictions"][0]
        assert prediction["threshold"] == second.threshold
        rows = replayed.rows(SCORED_DAY).filter(
            *(pl.col(c) == flight[c] for c in ("carrier", "flight", "origin", "sched_dep_time"))
        )
        pipeline = registry.ModelRegistry(mlflow_server).load_model(second.version)
        expected = pipeline.predict_proba(model.to_pandas_features(rows, list(pipeline.feature_names_in_)))[0, 1]
        assert abs(prediction["probability"] - expected) <= 1e-9
        print(f"\nchampion moved to version {second.version}: answered by it after {swap_seconds:.1f} s")
    finally:
        registry.ModelRegistry(mlflow_server).set_alias("champion", first.version)
