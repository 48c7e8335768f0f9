"""The online feature store: the newest features of each flight in Redis, one packed value per entity.

Key layout (``P`` = the key prefix, derived from the data home so two homes never collide;
every value is msgpack, see ``codec.py``; every key expires after ``ttl_seconds``):

    P:v1:flight:<YYYY-MM-DD>:<carrier>:<flight>:<origin>:<HHMM>
        [schema id, pushed_at, *the row of features.flight_features in ONLINE_COLUMNS order]
        (every column the offline table has but the label and the outcome flags:
        keys, predicted_at, features and the three known_at columns)
    P:v1:airport:<origin>      the origin's recent departures and cancellations, each with
                               its time, from which the airport state family is computed
                               (``airport_state.AirportEvents``); pushes and the stream write it
    P:v1:carrier:<carrier>     the carrier's delay history at its newest pushed predicted_at,
                               with the newest arrival it used (``known_at``)
    P:v1:pushed:<YYYY-MM-DD>   a Redis set of the flights pushed for that day (kept 4x longer),
                               so an expired flight is told apart from one never pushed
    P:v1:meta:last_push        what the last push wrote (counts, TTL, freshness)

Writes are ``SET ... EX`` in pipelines of ``WRITE_BATCH`` commands; a request reads its
flights and their origins with one ``MGET``. Redis being down is an
``OnlineStoreUnavailable`` with the reason, never a hang: connect and read timeouts are
short and a command is retried once (a pooled connection may predate a restart).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

import duckdb
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ml_platform.domain.calendar import NEW_YORK
from ml_platform.domain.features import COLUMNS, FLAG_COLUMNS, KNOWN_AT_COLUMNS, LABEL, TABLE
from ml_platform.serving.airport_state import AirportEvents, flight_id, fresher
from ml_platform.serving.codec import from_micros, pack, to_micros, unpack

LAYOUT = "v1"
# What is served: every column of the offline table except what happens at or after departure.
ONLINE_COLUMNS = tuple(c for c in COLUMNS if c not in (LABEL, *FLAG_COLUMNS))
SCHEMA_ID = hashlib.sha256(",".join(f"{c}:{COLUMNS[c]}" for c in ONLINE_COLUMNS).encode()).hexdigest()[:12]
CARRIER_HISTORY = tuple(c for c in ONLINE_COLUMNS if c.startswith("carrier_"))
DEFAULT_TTL_SECONDS = 48 * 3600
INDEX_TTL_FACTOR = 4
WRITE_BATCH = 1000
FETCH_ROWS = 5000
PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)*$")
_DAY_START = f"timezone('{NEW_YORK}', CAST(f.flight_date AS TIMESTAMP))"
_HISTORY_US = 28 * 24 * 3600 * 1_000_000  # the widest history window (HISTORY_WINDOW_DAYS)
_WINDOW_US = 2 * 3600 * 1_000_000


class OnlineStoreUnavailable(RuntimeError):
    """Redis could not be reached or did not answer in time; the message says where and why."""


def key_prefix_for_home(home: str | Path) -> str:
    """A key prefix unique to a data home: ``mlp:<12 hex of sha256(resolved path)>``."""
    return f"mlp:{hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:12]}"


def redacted(url: str) -> str:
    """The URL without its password, for messages and metadata."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class OnlineStoreSettings:
    """Where the online features live: a Redis URL (``redis://127.0.0.1:6379/<db>``), a key prefix, a TTL."""

    url: str
    prefix: str
    ttl_seconds: int = DEFAULT_TTL_SECONDS

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"not a Redis URL: {redacted(self.url)!r} (expected redis://host:port/db)")
        if not PREFIX_PATTERN.match(self.prefix) or len(self.prefix) > 100:
            raise ValueError(f"key prefix {self.prefix!r} must match {PREFIX_PATTERN.pattern} (at most 100 characters)")
        if not isinstance(self.ttl_seconds, int) or self.ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be a positive integer, got {self.ttl_seconds!r}")


class FlightKey(NamedTuple):
    """A flight's natural key, as in ``features.flight_features``."""

    flight_date: dt.date
    carrier: str
    flight: int
    origin: str
    sched_dep_time: int


@dataclass(frozen=True)
class FlightSelection:
    """Which rows of ``features.flight_features`` a push sends: New York days [first, last], or the
    flights whose ``predicted_at`` is in [start, end) (the upcoming flights)."""

    where: str
    params: dict
    label: str

    @classmethod
    def days(cls, first: dt.date, last: dt.date) -> FlightSelection:
        if first > last:
            raise ValueError(f"empty range: {first} is after {last}")
        return cls("flight_date BETWEEN $first AND $last", {"first": first, "last": last}, f"days {first}..{last}")

    @classmethod
    def predicted_between(cls, start: dt.datetime, end: dt.datetime) -> FlightSelection:
        if start.tzinfo is None or end.tzinfo is None or start >= end:
            raise ValueError(f"predicted_at window needs aware datetimes with start < end, got {start!r}, {end!r}")
        return cls(
            "predicted_at >= $start AND predicted_at < $end",
            {"start": start, "end": end},
            f"predicted_at in [{start.isoformat()}, {end.isoformat()})",
        )


@dataclass(frozen=True)
class DepartureEvent:
    """A flight left (what the stream consumer sees): its key, actual departure (UTC) and delay in minutes."""

    flight_date: dt.date
    carrier: str
    flight: int
    origin: str
    sched_dep_time: int
    actual_dep_utc: dt.datetime
    dep_delay: int


@dataclass(frozen=True)
class CancellationEvent:
    """A flight was cancelled; known at its scheduled departure."""

    flight_date: dt.date
    carrier: str
    flight: int
    origin: str
    sched_dep_time: int
    sched_dep_utc: dt.datetime


def airport_events(events: Iterable) -> list[DepartureEvent | CancellationEvent]:
    """The stream's ``departed`` and ``cancelled`` events (``stream.events.FlightEvent``) as airport
    events: a departure at its event time (the actual departure) with its delay, a cancellation at
    its event time (the scheduled departure). Arrivals say nothing about the airport state."""
    found: list[DepartureEvent | CancellationEvent] = []
    for e in events:
        key = (e.flight_date, e.carrier, e.flight, e.origin, e.sched_dep_time)
        if e.kind == "departed":
            found.append(DepartureEvent(*key, e.event_time, e.dep_delay))
        elif e.kind == "cancelled":
            found.append(CancellationEvent(*key, e.event_time))
    return found


@dataclass(frozen=True)
class PushResult:
    """What one push wrote, for the Dagster materialization's metadata."""

    selection: str
    flights: int
    airports: int
    carriers: int
    ttl_seconds: int
    pushed_at: dt.datetime
    newest_known_at: dt.datetime | None  # the freshest source time any pushed value used
    known_at: dict[str, dt.datetime | None]  # newest per family (weather, airport state, history)
    first_predicted_at: dt.datetime | None
    last_predicted_at: dt.datetime | None
    redis: str
    key_prefix: str
    seconds: float

    def metadata(self) -> dict:
        """Plain values (str, int, float) a person reads in the UI."""

        def iso(value):
            return value.isoformat() if value is not None else "none"

        lag = (self.pushed_at - self.newest_known_at).total_seconds() / 60 if self.newest_known_at else None
        return {
            "selection": self.selection,
            "dagster/row_count": self.flights,
            "flights": self.flights,
            "airports": self.airports,
            "carriers": self.carriers,
            "ttl_seconds": self.ttl_seconds,
            "pushed_at": iso(self.pushed_at),
            "newest_known_at": iso(self.newest_known_at),
            "known_at_lag_minutes": round(lag, 1) if lag is not None else "none",
            **{f"newest_{family}": iso(value) for family, value in self.known_at.items()},
            "first_predicted_at": iso(self.first_predicted_at),
            "last_predicted_at": iso(self.last_predicted_at),
            "redis": self.redis,
            "key_prefix": self.key_prefix,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class OnlineLookup:
    """One flight read back: its row (ready to score) or why there is none (``status`` 404 or 422)."""

    key: FlightKey
    row: dict | None = None
    pushed_at: dt.datetime | None = None
    airport_state_online: bool = False  # True: a fresher airport state than the pushed one was used
    status: int | None = None
    reason: str | None = None


@dataclass
class _PushTally:
    flights: int = 0
    windows: dict = field(default_factory=dict)  # origin: [min predicted_at us, max predicted_at us]
    carriers: dict = field(default_factory=dict)  # carrier: the row with the newest predicted_at
    days: dict = field(default_factory=dict)  # flight_date: [flight ids]
    known_at: dict = field(default_factory=lambda: dict.fromkeys(KNOWN_AT_COLUMNS))

    def add(self, row: dict) -> None:
        self.flights += 1
        p = to_micros(row["predicted_at"])
        window = self.windows.setdefault(row["origin"], [p, p])
        window[0], window[1] = min(window[0], p), max(window[1], p)
        newest = self.carriers.get(row["carrier"])
        if newest is None or row["predicted_at"] > newest["predicted_at"]:
            self.carriers[row["carrier"]] = row
        self.days.setdefault(row["flight_date"], []).append(_flight_member(row))
        for column in KNOWN_AT_COLUMNS:
            value, best = row[column], self.known_at[column]
            if value is not None and (best is None or value > best):
                self.known_at[column] = value


def _flight_member(row) -> str:
    return f"{row['carrier']}:{row['flight']}:{row['origin']}:{row['sched_dep_time']}"


class OnlineStore:
    """Reads and writes the online features of one prefix in one Redis database."""

    def __init__(
        self, settings: OnlineStoreSettings, *, client: redis.Redis | None = None, timeout_seconds: float = 1.0
    ) -> None:
        self.settings = settings
        self.client = client or redis.Redis.from_url(
            settings.url,
            socket_connect_timeout=timeout_seconds,
            socket_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 1),
        )
        self._p = f"{settings.prefix}:{LAYOUT}"
        # origin: (packed bytes, decoded entity with its prefix sums); reused while Redis holds the same bytes
        self._airports: dict[str, tuple[bytes, AirportEvents]] = {}

    # ------------------------------------------------------------ keys

    def flight_key(self, key: FlightKey) -> str:
        return (
            f"{self._p}:flight:{key.flight_date.isoformat()}:{key.carrier}:{int(key.flight)}:{key.origin}:"
            f"{int(key.sched_dep_time):04d}"
        )

    def airport_key(self, origin: str) -> str:
        return f"{self._p}:airport:{origin}"

    def carrier_key(self, carrier: str) -> str:
        return f"{self._p}:carrier:{carrier}"

    def pushed_key(self, day: dt.date) -> str:
        return f"{self._p}:pushed:{day.isoformat()}"

    @property
    def last_push_key(self) -> str:
        return f"{self._p}:meta:last_push"

    # ------------------------------------------------------------ plumbing

    @contextmanager
    def _reachable(self, what: str) -> Iterator[None]:
        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            raise OnlineStoreUnavailable(
                f"Redis at {redacted(self.settings.url)} is unreachable while {what}: {e}"
            ) from e

    def ping(self) -> None:
        """Nothing, or OnlineStoreUnavailable with the reason."""
        with self._reachable("checking its health"):
            self.client.ping()

    def close(self) -> None:
        self.client.close()

    def delete_all(self) -> int:
        """Delete every key of this prefix (tests, a reset of the home); returns how many."""
        deleted = 0
        with self._reachable("deleting keys"):
            batch = []
            for key in self.client.scan_iter(match=f"{self.settings.prefix}:*", count=1000):
                batch.append(key)
                if len(batch) >= WRITE_BATCH:
                    deleted += self.client.unlink(*batch)
                    batch = []
            if batch:
                deleted += self.client.unlink(*batch)
        return deleted

    # ------------------------------------------------------------ writes

    def write_rows(self, rows: Iterable[dict], pushed_at: dt.datetime) -> int:
        """``SET ... EX`` one packed value per flight row, pipelined; returns how many."""
        ttl, written = self.settings.ttl_seconds, 0
        with self._reachable("writing flight features"):
            pipe = self.client.pipeline(transaction=False)
            for row in rows:
                value = [SCHEMA_ID, pushed_at, *(row[c] for c in ONLINE_COLUMNS)]
                pipe.set(self.flight_key(FlightKey(*(row[c] for c in FlightKey._fields))), pack(value), ex=ttl)
                written += 1
                if len(pipe) >= WRITE_BATCH:
                    pipe.execute()
            pipe.execute()
        return written

    def update_airport(self, origin: str, change: Callable[[AirportEvents], AirportEvents]) -> AirportEvents:
        """Read, change and write one airport entity atomically (WATCH/MULTI: a concurrent writer retries)."""
        key = self.airport_key(origin)

        def apply(pipe) -> AirportEvents:
            raw = pipe.get(key)
            current = AirportEvents.from_packable(unpack(raw)) if raw else AirportEvents(origin)
            new = change(current)
            pipe.multi()
            pipe.set(key, pack(new.to_packable()), ex=self.settings.ttl_seconds)
            return new

        with self._reachable(f"updating airport {origin}"):
            return self.client.transaction(apply, key, value_from_callable=True)

    def record_events(self, events: Iterable[DepartureEvent | CancellationEvent]) -> dict[str, dt.datetime | None]:
        """The stream consumer's entry point: add departures and cancellations to their origins'
        entities (one transaction per origin; a replayed event replaces itself). Returns each
        touched origin's newest event time. Flight rows are never changed here: the fresher
        airport state is applied when a flight is read (``airport_state.fresher``)."""
        from ml_platform.serving.airport_state import departure_time_us

        by_origin: dict[str, tuple[list, list]] = {}
        for e in events:
            deps, cans = by_origin.setdefault(e.origin, ([], []))
            fid = flight_id(e.flight_date, e.carrier, e.flight, e.sched_dep_time)
            if isinstance(e, DepartureEvent):
                deps.append((departure_time_us(e.flight_date, e.actual_dep_utc), int(e.dep_delay), fid))
            else:
                cans.append((to_micros(e.sched_dep_utc), fid))
        return {
            origin: self.update_airport(origin, lambda a, d=deps, c=cans: a.merged(d, c)).known_at
            for origin, (deps, cans) in by_origin.items()
        }

    # ------------------------------------------------------------ reads

    def read(self, keys: Sequence[FlightKey]) -> list[OnlineLookup]:
        """The rows of ``keys`` (one MGET with their origins' entities), each with the fresher airport
        state applied where there is one, or the reason it is missing."""
        origins = sorted({k.origin for k in keys})
        with self._reachable("reading flight features"):
            values = self.client.mget([*(self.flight_key(k) for k in keys), *(self.airport_key(o) for o in origins)])
        airports = {o: self._decode_airport(o, raw) for o, raw in zip(origins, values[len(keys) :], strict=True) if raw}
        found = []
        for key, raw in zip(keys, values[: len(keys)], strict=True):
            lookup = OnlineLookup(key)
            if raw is None:
                found.append(lookup)
                continue
            packed = unpack(raw)
            if packed[0] != SCHEMA_ID:
                lookup.status, lookup.reason = (
                    422,
                    (
                        f"the features of this flight were pushed with column layout {packed[0]!r}; this service reads "
                        f"{SCHEMA_ID!r}: push them again with this version"
                    ),
                )
            else:
                row = dict(zip(ONLINE_COLUMNS, packed[2:], strict=True))
                airport = airports.get(key.origin)
                state = airport.state_at(row["predicted_at"]) if airport else None
                lookup.row, lookup.airport_state_online = fresher(row, state)
                lookup.pushed_at = packed[1]
            found.append(lookup)
        self._explain_missing([f for f in found if f.row is None and f.status is None])
        return found

    def _decode_airport(self, origin: str, raw: bytes) -> AirportEvents:
        cached = self._airports.get(origin)
        if cached is not None and cached[0] == raw:
            return cached[1]
        entity = AirportEvents.from_packable(unpack(raw))
        self._airports[origin] = (raw, entity)
        return entity

    def _explain_missing(self, missing: list[OnlineLookup]) -> None:
        if not missing:
            return
        with self._reachable("reading which flights were pushed"):
            pipe = self.client.pipeline(transaction=False)
            for m in missing:
                pipe.sismember(self.pushed_key(m.key.flight_date), _flight_member(m.key._asdict()))
            pushed = pipe.execute()
        for m, was_pushed in zip(missing, pushed, strict=True):
            m.status = 404
            m.reason = (
                f"the features of this flight expired (kept {self.settings.ttl_seconds} s after each push): "
                "push them again"
                if was_pushed
                else "no features were pushed for this flight: it is unknown, or its day/window was not pushed yet"
            )

    def read_airport(self, origin: str) -> AirportEvents | None:
        with self._reachable(f"reading airport {origin}"):
            raw = self.client.get(self.airport_key(origin))
        return AirportEvents.from_packable(unpack(raw)) if raw else None

    def read_carrier(self, carrier: str) -> dict | None:
        with self._reachable(f"reading carrier {carrier}"):
            raw = self.client.get(self.carrier_key(carrier))
        return unpack(raw) if raw else None

    def last_push(self) -> dict | None:
        with self._reachable("reading the last push"):
            raw = self.client.get(self.last_push_key)
        return unpack(raw) if raw else None


# ---------------------------------------------------------------- the push


def _rows(conn: duckdb.DuckDBPyConnection, selection: FlightSelection) -> Iterator[dict]:
    cursor = conn.execute(
        f"SELECT {', '.join(ONLINE_COLUMNS)} FROM {TABLE} WHERE {selection.where} "
        "ORDER BY predicted_at, origin, carrier, flight, sched_dep_time",
        selection.params,
    )
    while batch := cursor.fetchmany(FETCH_ROWS):
        for values in batch:
            yield dict(zip(ONLINE_COLUMNS, values, strict=True))


def _airport_events(conn, windows: dict[str, list[int]]) -> dict[str, tuple[list, list]]:
    """Every departure and cancellation of ``core.fct_flights`` at each origin with t in its window
    [min predicted_at - 2 h, max predicted_at], timed as the features SQL times them."""
    if not windows:
        return {}
    origins = sorted(windows)
    starts = [windows[o][0] - _WINDOW_US for o in origins]
    ends = [windows[o][1] for o in origins]
    params = {
        "origins": origins,
        "starts": starts,
        "ends": ends,
        # A departure is timed no earlier than its day's start and at most ~2 days after it.
        "d0": (from_micros(min(starts)) - dt.timedelta(days=3)).date(),
        "d1": (from_micros(max(ends)) + dt.timedelta(days=1)).date(),
    }
    windows_sql = "w AS (SELECT unnest($origins) AS origin, unnest($starts) AS ws, unnest($ends) AS we)"
    departures = conn.execute(
        f"""WITH {windows_sql}, d AS (
            SELECT f.origin, f.flight_date, f.carrier, f.flight, f.sched_dep_time, f.dep_delay, w.ws, w.we,
                   epoch_us(greatest(f.actual_dep_utc, {_DAY_START})) AS t
            FROM core.fct_flights f JOIN w USING (origin)
            WHERE f.actual_dep_utc IS NOT NULL AND f.flight_date BETWEEN $d0 AND $d1)
        SELECT origin, flight_date, carrier, flight, sched_dep_time, t, dep_delay FROM d WHERE t BETWEEN ws AND we""",
        params,
    ).fetchall()
    cancellations = conn.execute(
        f"""WITH {windows_sql}
        SELECT f.origin, f.flight_date, f.carrier, f.flight, f.sched_dep_time, epoch_us(f.sched_dep_utc)
        FROM core.fct_flights f JOIN w USING (origin)
        WHERE f.is_cancelled AND f.flight_date BETWEEN $d0 AND $d1
          AND epoch_us(f.sched_dep_utc) BETWEEN w.ws AND w.we""",
        params,
    ).fetchall()
    events: dict[str, tuple[list, list]] = {o: ([], []) for o in origins}
    for origin, day, carrier, flight, sched, t, delay in departures:
        events[origin][0].append((t, delay, flight_id(day, carrier, flight, sched)))
    for origin, day, carrier, flight, sched, t in cancellations:
        events[origin][1].append((t, flight_id(day, carrier, flight, sched)))
    return events


def _carrier_snapshots(conn, newest_rows: dict[str, dict]) -> dict[str, dict]:
    """Each carrier's delay history at its newest pushed predicted_at, with the newest arrival it used."""
    carriers = sorted(newest_rows)
    as_of = [to_micros(newest_rows[c]["predicted_at"]) for c in carriers]
    used = (
        dict(
            conn.execute(
                f"""WITH c AS (SELECT unnest($carriers) AS carrier, unnest($as_of) AS as_of)
        SELECT c.carrier, max(epoch_us(greatest(f.actual_arr_utc, {_DAY_START})))
        FROM c JOIN core.fct_flights f USING (carrier)
        WHERE f.is_delayed IS NOT NULL AND f.actual_arr_utc IS NOT NULL AND f.flight_date BETWEEN $d0 AND $d1
          AND epoch_us(greatest(f.actual_arr_utc, {_DAY_START})) BETWEEN c.as_of - {_HISTORY_US} AND c.as_of
        GROUP BY ALL""",
                {
                    "carriers": carriers,
                    "as_of": as_of,
                    "d0": (from_micros(min(as_of) - _HISTORY_US) - dt.timedelta(days=1)).date(),
                    "d1": (from_micros(max(as_of)) + dt.timedelta(days=1)).date(),
                },
            ).fetchall()
        )
        if carriers
        else {}
    )
    return {
        c: {
            "carrier": c,
            "as_of": newest_rows[c]["predicted_at"],
            "known_at": from_micros(used[c]) if used.get(c) is not None else None,
            **{col: newest_rows[c][col] for col in CARRIER_HISTORY},
        }
        for c in carriers
    }


def push_flight_features(store: OnlineStore, conn: duckdb.DuckDBPyConnection, selection: FlightSelection) -> PushResult:
    """Push the selected rows of ``features.flight_features`` and the entities they are built from.

    Flight rows are written as they are in the offline table (``ONLINE_COLUMNS``). Each
    origin's entity receives every departure and cancellation of ``core.fct_flights`` in
    [its first pushed predicted_at - 2 h, its last pushed predicted_at] and vouches for the
    window from then on (see ``airport_state``); a carrier's snapshot is replaced only by a
    newer one. Needs ``features.flight_features`` and ``core.fct_flights`` on ``conn``.
    """
    started = time.perf_counter()
    pushed_at = dt.datetime.now(dt.UTC)
    tally = _PushTally()

    def counted(rows: Iterable[dict]) -> Iterator[dict]:
        for row in rows:
            tally.add(row)
            yield row

    store.write_rows(counted(_rows(conn, selection)), pushed_at)
    for origin, (deps, cans) in _airport_events(conn, tally.windows).items():
        window_start = tally.windows[origin][0] - _WINDOW_US
        store.update_airport(origin, lambda a, d=deps, c=cans, s=window_start: a.merged(d, c, complete_from_us=s))
    snapshots = _carrier_snapshots(conn, tally.carriers)
    ttl = store.settings.ttl_seconds
    with store._reachable("writing carriers and the push index"):
        existing = store.client.mget([store.carrier_key(c) for c in snapshots]) if snapshots else []
        pipe = store.client.pipeline(transaction=False)
        for (carrier, snapshot), raw in zip(snapshots.items(), existing, strict=True):
            if raw is None or unpack(raw)["as_of"] <= snapshot["as_of"]:
                pipe.set(store.carrier_key(carrier), pack(snapshot), ex=ttl)
        for day, members in tally.days.items():
            for start in range(0, len(members), WRITE_BATCH):
                pipe.sadd(store.pushed_key(day), *members[start : start + WRITE_BATCH])
            pipe.expire(store.pushed_key(day), ttl * INDEX_TTL_FACTOR)
        pipe.execute()
    times = [to_micros(r["predicted_at"]) for r in tally.carriers.values()]
    windows = list(tally.windows.values())
    known = [v for v in tally.known_at.values() if v is not None]
    result = PushResult(
        selection=selection.label,
        flights=tally.flights,
        airports=len(tally.windows),
        carriers=len(tally.carriers),
        ttl_seconds=ttl,
        pushed_at=pushed_at,
        newest_known_at=max(known) if known else None,
        known_at=dict(tally.known_at),
        first_predicted_at=from_micros(min(w[0] for w in windows)) if windows else None,
        last_predicted_at=from_micros(max(times)) if times else None,
        redis=redacted(store.settings.url),
        key_prefix=store.settings.prefix,
        seconds=time.perf_counter() - started,
    )
    with store._reachable("writing the last push"):
        store.client.set(store.last_push_key, pack(result.metadata()), ex=ttl * INDEX_TTL_FACTOR)
    return result
