"""Every online answer, appended to the lake in batches, so realized performance covers online predictions.

    <lake>/raw/online_predictions/date=YYYY-MM-DD/<UTC time>-<random>.parquet

``date`` is the flight's New York day (as ``ml.predictions``' ``flight_date``), one file per
day and flush. A flush happens when ``max_rows`` answers are waiting, every
``max_seconds`` from a background thread, and at shutdown; each file is written whole
(``Store.write_bytes`` is atomic) and never rewritten. A failed write keeps the rows for
the next flush (at most ``max_buffered`` rows; beyond that the oldest are dropped and
counted, so a lake outage never takes the service's memory).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections import deque

import polars as pl

from ml_platform.io.store import open_store

log = logging.getLogger(__name__)
FOLDER = "raw/online_predictions"
SCHEMA = {
    "request_id": pl.String,
    "scored_at": pl.Datetime("us", "UTC"),
    "flight_date": pl.Date,
    "carrier": pl.String,
    "flight": pl.Int32,
    "origin": pl.String,
    "sched_dep_time": pl.Int32,
    "dest": pl.String,
    "predicted_at": pl.Datetime("us", "UTC"),
    "model_version": pl.Int32,
    "probability": pl.Float64,
    "predicted_class": pl.Boolean,
    "threshold": pl.Float64,
    "weather_known_at": pl.Datetime("us", "UTC"),
    "airport_state_known_at": pl.Datetime("us", "UTC"),
    "history_known_at": pl.Datetime("us", "UTC"),
    "airport_state_online": pl.Boolean,
    "features_pushed_at": pl.Datetime("us", "UTC"),
}


class PredictionLog:
    """A thread-safe buffer of answers, flushed to ``<lake_url>/raw/online_predictions``."""

    def __init__(
        self, lake_url: str, *, max_rows: int = 5000, max_seconds: float = 5.0, max_buffered: int = 200_000
    ) -> None:
        self.store = open_store(lake_url)
        self.max_rows, self.max_seconds, self.max_buffered = max_rows, max_seconds, max_buffered
        self._rows: deque[dict] = deque()
        self._lock = threading.Lock()  # guards _rows
        self._flush_lock = threading.Lock()  # one flush at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.files_written = 0
        self.rows_written = 0
        self.rows_dropped = 0
        self.last_error: str | None = None

    def append(self, rows: list[dict]) -> None:
        with self._lock:
            self._rows.extend(rows)
            overflow = len(self._rows) - self.max_buffered
            for _ in range(max(0, overflow)):
                self._rows.popleft()
            self.rows_dropped += max(0, overflow)
            full = len(self._rows) >= self.max_rows
        if full:
            self._wake.set()  # the flusher thread writes; the request never waits for the lake

    @property
    def buffered(self) -> int:
        return len(self._rows)

    def flush(self) -> int:
        """Write what is buffered, one file per flight day; returns the rows written."""
        with self._flush_lock:
            with self._lock:
                rows = list(self._rows)
                self._rows.clear()
            if not rows:
                return 0
            frame = pl.DataFrame(rows, schema=SCHEMA)
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
            written_days: set[dt.date] = set()
            written = 0
            try:
                for (day,), part in frame.group_by("flight_date", maintain_order=True):
                    path = f"{FOLDER}/date={day.isoformat()}/{stamp}-{uuid.uuid4().hex[:8]}.parquet"
                    self.store.write_bytes(path, _parquet(part.sort("scored_at")))
                    written_days.add(day)
                    written += part.height
                    self.files_written += 1
                self.last_error = None
            except Exception as e:  # noqa: BLE001 - keep the rows not yet written for the next flush
                self.last_error = f"{type(e).__name__}: {e}"
                unwritten = [r for r in rows if r["flight_date"] not in written_days]
                log.warning("prediction log flush failed, %d rows kept for the next one: %s", len(unwritten), e)
                with self._lock:
                    self._rows.extendleft(reversed(unwritten))
            self.rows_written += written
            return written

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.max_seconds)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        """Stop the flusher and write what is left."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()


def _parquet(frame: pl.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=True)
    return buffer.getvalue()


def read_log(lake_url: str) -> pl.DataFrame:
    """Every logged answer (for tests and for realized performance)."""
    import io

    store = open_store(lake_url)
    frames = [
        pl.read_parquet(io.BytesIO(store.read_bytes(f.path))) for f in store.list(FOLDER) if f.path.endswith(".parquet")
    ]
    return pl.concat(frames) if frames else pl.DataFrame(schema=SCHEMA)
