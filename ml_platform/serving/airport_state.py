"""The airport state family, recomputed online from an origin's recent departures and cancellations.

``features.flight_features`` describes the airport a flight leaves from as it was at the
flight's ``predicted_at`` P (``ml_platform/pipeline/features/sql.py``):

* ``origin_departed_2h``: departures with t in (P - 2 h, P], where a departure's t is
  ``greatest(actual_dep_utc, start of its New York flight day)``;
* ``origin_mean_dep_delay_2h``: the sum of their ``dep_delay`` / their count (NULL for none);
* ``origin_cancelled_2h``: cancellations with ``sched_dep_utc`` in (P - 2 h, P];
* ``airport_state_known_at``: the newest of those departure and cancellation times.

``AirportEvents`` is the online entity those values are made from: every event of one
origin that a push (from ``core.fct_flights``) or the stream consumer delivered, each
with its own time t (its ``known_at``), deduplicated by flight (replays are harmless).
``state_at(P)`` computes the four values exactly as the SQL does, from events with
t <= P only, so an event that was delivered early can never leak into an earlier
prediction.

``complete_from``: the entity holds every delivered event with t >= it. Only a push sets
it (to the start of the window it delivered, ``min(predicted_at) - 2 h``); dropping old
events (``RETENTION``) raises it. An entity only the stream has written has none and is
never used to change a row. ``fresher(row, state)`` is the rule applied at scoring time.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from ml_platform.domain import calendar
from ml_platform.serving.codec import from_micros, to_micros

NEW_YORK = ZoneInfo(calendar.NEW_YORK)
WINDOW_US = 2 * 3600 * 1_000_000  # AIRPORT_WINDOW_HOURS of the features SQL
# Events older than the newest one by more than this are dropped (a 2-hour window, a
# horizon of up to a day, and slack): an entity stays around 10-15 kB per origin.
RETENTION_US = 30 * 3600 * 1_000_000
AIRPORT_STATE_COLUMNS = (
    "origin_departed_2h",
    "origin_mean_dep_delay_2h",
    "origin_cancelled_2h",
    "airport_state_known_at",
)


def flight_id(flight_date: dt.date, carrier: str, flight: int, sched_dep_time: int) -> str:
    """The identity of a flight within its origin: events of the same flight replace each other."""
    return f"{flight_date.isoformat()}|{carrier}|{int(flight)}|{int(sched_dep_time)}"


def departure_time_us(flight_date: dt.date, actual_dep_utc: dt.datetime) -> int:
    """When a departure is usable: its actual time, but never before its New York flight day starts."""
    day_start = dt.datetime.combine(flight_date, dt.time(0), tzinfo=NEW_YORK)
    return max(to_micros(actual_dep_utc), to_micros(day_start))


@dataclass(frozen=True)
class AirportState:
    """The airport state family of one flight, recomputed from events."""

    departed: int
    mean_dep_delay: float | None
    cancelled: int
    known_at: dt.datetime | None

    def as_columns(self) -> dict:
        return dict(
            zip(AIRPORT_STATE_COLUMNS, (self.departed, self.mean_dep_delay, self.cancelled, self.known_at), strict=True)
        )


@dataclass(frozen=True)
class AirportEvents:
    """One origin's delivered events, sorted by time. ``departures``: (t_us, dep_delay, flight id);
    ``cancellations``: (t_us, flight id)."""

    origin: str
    complete_from_us: int | None = None
    departures: tuple[tuple[int, int | float | None, str], ...] = ()
    cancellations: tuple[tuple[int, str], ...] = ()
    _index: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def known_at(self) -> dt.datetime | None:
        """The newest event time this entity holds (its freshness)."""
        times = [d[0] for d in self.departures[-1:]] + [c[0] for c in self.cancellations[-1:]]
        return from_micros(max(times)) if times else None

    def merged(
        self,
        departures: Iterable[tuple[int, int | float | None, str]] = (),
        cancellations: Iterable[tuple[int, str]] = (),
        *,
        complete_from_us: int | None = None,
    ) -> AirportEvents:
        """A new entity with these events added (an event of a flight already held replaces it),
        ``complete_from`` lowered to ``complete_from_us`` when given, and old events dropped."""
        deps = {e[2]: (int(e[0]), e[1], e[2]) for e in self.departures}
        deps.update({e[2]: (int(e[0]), e[1], e[2]) for e in departures})
        cans = {e[1]: (int(e[0]), e[1]) for e in self.cancellations}
        cans.update({e[1]: (int(e[0]), e[1]) for e in cancellations})
        complete = self.complete_from_us
        if complete_from_us is not None:
            complete = complete_from_us if complete is None else min(complete, complete_from_us)
        times = [t for t, *_ in deps.values()] + [t for t, _ in cans.values()]
        if times:
            cutoff = max(times) - RETENTION_US
            deps = {k: v for k, v in deps.items() if v[0] >= cutoff}
            cans = {k: v for k, v in cans.items() if v[0] >= cutoff}
            if complete is not None:
                complete = max(complete, cutoff)
        return AirportEvents(
            origin=self.origin,
            complete_from_us=complete,
            departures=tuple(sorted(deps.values(), key=lambda e: (e[0], e[2]))),
            cancellations=tuple(sorted(cans.values())),
        )

    def to_packable(self) -> dict:
        return {
            "origin": self.origin,
            "complete_from_us": self.complete_from_us,
            "departures": [list(e) for e in self.departures],
            "cancellations": [list(e) for e in self.cancellations],
        }

    @classmethod
    def from_packable(cls, value: dict) -> AirportEvents:
        return cls(
            origin=value["origin"],
            complete_from_us=value["complete_from_us"],
            departures=tuple((e[0], e[1], e[2]) for e in value["departures"]),
            cancellations=tuple((e[0], e[1]) for e in value["cancellations"]),
        )

    def _prefix_sums(self) -> tuple[list[int], list[int], list[int]]:
        if not self._index:
            delays = [0]
            for _, delay, _ in self.departures:
                delays.append(delays[-1] + (delay or 0))
            self._index.update(
                dep_times=[e[0] for e in self.departures],
                dep_delays=delays,
                can_times=[e[0] for e in self.cancellations],
            )
        return self._index["dep_times"], self._index["dep_delays"], self._index["can_times"]

    def state_at(self, predicted_at: dt.datetime) -> AirportState | None:
        """The airport state at ``predicted_at`` from events with t <= it, or None when this entity
        cannot vouch for the whole window (no push set ``complete_from``, or it is too recent)."""
        end = to_micros(predicted_at)
        start = end - WINDOW_US
        if self.complete_from_us is None or self.complete_from_us > start:
            return None
        dep_times, dep_delays, can_times = self._prefix_sums()
        lo, hi = bisect.bisect_right(dep_times, start), bisect.bisect_right(dep_times, end)
        departed = hi - lo
        c_lo, c_hi = bisect.bisect_right(can_times, start), bisect.bisect_right(can_times, end)
        cancelled = c_hi - c_lo
        newest = max((dep_times[hi - 1],) if departed else (), default=None)
        if cancelled and (newest is None or can_times[c_hi - 1] > newest):
            newest = can_times[c_hi - 1]
        return AirportState(
            departed=departed,
            # Integer minutes summed exactly, then one division: what DuckDB computes.
            mean_dep_delay=(dep_delays[hi] - dep_delays[lo]) / departed if departed else None,
            cancelled=cancelled,
            known_at=from_micros(newest) if newest is not None else None,
        )


def fresher(row: dict, state: AirportState | None) -> tuple[dict, bool]:
    """The row to score, and whether its airport state was replaced by the online one.

    Replaced only when ``state`` exists (the entity vouches for the row's whole window),
    knows at least as recent an event as the row used (``known_at`` not older), and says
    something else. Such an entity holds every event the row used (a push delivers to it
    every event its rows used) plus later ones, and counts only events with
    t <= predicted_at, so nothing from after ``predicted_at`` is used either way; the
    result is what the offline table will hold for that flight once those departures are
    in the warehouse. For a replayed day the pushed row already knows every event: the
    state is equal and the row is scored as it is.
    """
    if state is None:
        return row, False
    used = row.get("airport_state_known_at")
    if used is not None and (state.known_at is None or state.known_at < used):
        return row, False  # the entity knows less than the row: never go back
    online = state.as_columns()
    if all(_same(online[c], row.get(c)) for c in AIRPORT_STATE_COLUMNS):
        return row, False
    return {**row, **online}, True


def _same(a, b) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b
