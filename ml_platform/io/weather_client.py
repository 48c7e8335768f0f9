"""The client of the hourly weather HTTP API: every page of a time window, with timeouts and retries.

The API (``GET /weather?origin=&start=&end=&page=&page_size=``, UTC instants, half-open on
``time_hour``) is served for the reference data by ``ml_platform.devdata.weather_server``.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from ml_platform.domain.calendar import NEW_YORK

RETRY_STATUSES = (429, 500, 502, 503, 504)


class WeatherApiError(RuntimeError):
    """The weather API refused the request or kept failing after the retries."""


def _utc_text(t: dt.datetime) -> str:
    if t.tzinfo is None:
        raise ValueError(f"{t!r} is naive; pass a timezone-aware datetime")
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _reason(e: requests.RequestException) -> str:
    """The innermost cause of a failed request, e.g. 'connection refused'."""
    err = e.args[0] if e.args and isinstance(e.args[0], BaseException) else e  # urllib3's MaxRetryError
    err = getattr(err, "reason", None) or err  # e.g. NewConnectionError, ReadTimeoutError
    cause = err.__cause__
    return cause.strerror.lower() if isinstance(cause, OSError) and cause.strerror else str(err)


def _json(resp: requests.Response) -> dict:
    try:
        return resp.json()
    except ValueError:
        return {"error": resp.text[:200]}


class WeatherClient:
    """One HTTP session to the weather API, reused for every page and day of a run.

    Connection errors and 429/5xx answers are retried ``retries`` times with exponential backoff;
    each request waits at most ``timeout`` seconds.
    """

    def __init__(
        self, base_url: str, *, timeout: float = 10.0, retries: int = 4, backoff: float = 0.5, page_size: int = 1000
    ):
        self.url = base_url.rstrip("/") + "/weather"
        self.timeout, self.retries, self.page_size = timeout, retries, page_size
        retry = Retry(
            total=retries,
            backoff_factor=backoff,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=["GET"],
            raise_on_status=False,
        )
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))

    def fetch(self, start: dt.datetime, end: dt.datetime, *, origins=None) -> list[dict]:
        """All rows with ``start <= time_hour < end`` (optionally only ``origins``), walking every page."""
        url = self.url
        params = {"start": _utc_text(start), "end": _utc_text(end), "page_size": self.page_size}
        if origins:
            params["origin"] = ",".join([origins] if isinstance(origins, str) else origins)
        rows: list[dict] = []
        page: int | None = 1
        while page is not None:
            failed = f"weather API {url} failed after {self.retries + 1} attempts"
            try:
                resp = self.session.get(url, params={**params, "page": page}, timeout=self.timeout)
            except requests.RequestException as e:
                raise WeatherApiError(f"{failed}: {_reason(e)}") from e
            if resp.status_code == 400:
                raise WeatherApiError(f"weather API {url} rejected the request: {_json(resp).get('error')}")
            if resp.status_code in RETRY_STATUSES:
                raise WeatherApiError(f"{failed}: HTTP {resp.status_code} {resp.text[:200]}")
            if resp.status_code != 200:
                raise WeatherApiError(f"weather API {url} answered HTTP {resp.status_code}: {resp.text[:200]}")
            body = _json(resp)
            if "rows" not in body:
                raise WeatherApiError(f"weather API {url} answered without rows: {body}")
            rows.extend(body["rows"])
            page = body["next_page"]
        return rows

    def fetch_day(self, day: dt.date, *, tz: str = NEW_YORK, origins=None) -> list[dict]:
        """The hourly rows of one local calendar day (see ``day_window``)."""
        return self.fetch(*day_window(day, tz), origins=origins)

    def close(self) -> None:
        self.session.close()


def fetch_weather(base_url: str, start: dt.datetime, end: dt.datetime, *, origins=None, **client) -> list[dict]:
    """One window with a client of its own (``client``: WeatherClient's options)."""
    weather = WeatherClient(base_url, **client)
    try:
        return weather.fetch(start, end, origins=origins)
    finally:
        weather.close()


def day_window(day: dt.date, tz: str = NEW_YORK) -> tuple[dt.datetime, dt.datetime]:
    """[local midnight of ``day``, local midnight of the next day) as UTC instants (23 or 25 h on DST days)."""
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(day, dt.time(), zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def fetch_weather_day(base_url: str, day: dt.date, *, tz: str = NEW_YORK, origins=None, **client) -> list[dict]:
    """The hourly rows of one local calendar day (see ``day_window``), with a client of its own."""
    return fetch_weather(base_url, *day_window(day, tz), origins=origins, **client)
