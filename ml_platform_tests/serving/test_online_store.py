"""The online store on a real Redis: packed values come back exactly, a pushed day reads back equal
to the offline table, keys carry the prefix and the TTL, and what a push reports is what it wrote."""

from __future__ import annotations

import datetime as dt
import math
import struct
import zoneinfo

import pytest

from ml_platform.domain.features import COLUMNS, KNOWN_AT_COLUMNS, LABEL, TABLE
from ml_platform.serving import codec
from ml_platform.serving.online_store import (
    ONLINE_COLUMNS,
    FlightKey,
    FlightSelection,
    OnlineStore,
    OnlineStoreSettings,
    key_prefix_for_home,
    push_flight_features,
    redacted,
)

from .conftest import SCORED_DAY

UTC = dt.UTC


def same(a, b) -> bool:
    """Equal values of equal types; floats to the bit (NaN equals NaN)."""
    if isinstance(a, float) or isinstance(b, float):
        return type(a) is type(b) and struct.pack("<d", a) == struct.pack("<d", b)
    return (
        type(a) is type(b) and a == b
        if not isinstance(a, dt.datetime)
        else (isinstance(b, dt.datetime) and a == b and b.tzinfo is not None)
    )


@pytest.mark.parametrize(
    "value",
    [
        0.1 + 0.2,
        -0.0,
        5e-324,
        1.7976931348623157e308,
        float("inf"),
        float("-inf"),
        float("nan"),
        1.0,
        0,
        -1,
        2**63 - 1,
        -(2**63),
        True,
        False,
        None,
        "",
        "Zürich ✈",
        dt.date(2013, 1, 1),
        dt.date(1969, 12, 31),
        dt.date(9999, 12, 31),
        dt.datetime(2013, 7, 11, 12, 34, 56, 789012, tzinfo=UTC),
        dt.datetime(1960, 1, 1, tzinfo=UTC),
    ],
)
def test_a_packed_value_comes_back_exactly(value):
    assert same(codec.unpack(codec.pack(value)), value)
    assert same(codec.unpack(codec.pack([value]))[0], value)


def test_a_time_in_any_zone_comes_back_as_the_same_instant_in_utc_and_a_naive_one_is_refused():
    local = dt.datetime(2013, 3, 10, 1, 59, 59, 999999, tzinfo=zoneinfo.ZoneInfo("America/New_York"))
    back = codec.unpack(codec.pack(local))
    assert back == local and back.utcoffset() == dt.timedelta(0)
    assert back.isoformat() == "2013-03-10T06:59:59.999999+00:00"
    with pytest.raises(TypeError, match="naive"):
        codec.pack(dt.datetime(2013, 1, 1))
    with pytest.raises(TypeError, match="cannot pack"):
        codec.pack({1, 2})


def test_settings_are_checked_and_the_prefix_follows_the_data_home(tmp_path):
    a, b = key_prefix_for_home(tmp_path / "a"), key_prefix_for_home(tmp_path / "b")
    assert a != b and a == key_prefix_for_home(tmp_path / "a" / ".." / "a") and a.startswith("mlp:")
    OnlineStoreSettings("redis://127.0.0.1:6379/3", a)
    for url, prefix, ttl in [
        ("http://127.0.0.1:6379/0", "p", 60),
        ("redis://127.0.0.1:6379/0", "a*b", 60),
        ("redis://127.0.0.1:6379/0", "a:", 60),
        ("redis://127.0.0.1:6379/0", "", 60),
        ("redis://127.0.0.1:6379/0", "p", 0),
    ]:
        with pytest.raises(ValueError):
            OnlineStoreSettings(url, prefix, ttl)
    assert redacted("redis://user:secret@127.0.0.1:6379/2") == "redis://user:***@127.0.0.1:6379/2"  # fake credential


def test_online_rows_never_carry_the_outcome():
    assert LABEL not in ONLINE_COLUMNS and "is_cancelled" not in ONLINE_COLUMNS and "is_diverted" not in ONLINE_COLUMNS
    assert set(COLUMNS) - set(ONLINE_COLUMNS) == {LABEL, "is_cancelled", "is_diverted"}
    assert set(KNOWN_AT_COLUMNS) <= set(ONLINE_COLUMNS)


def test_a_pushed_day_reads_back_equal_to_the_offline_rows(online: OnlineStore, replayed):
    """Every column of every flight of a real day, to the bit; keys under the prefix with the TTL."""
    result = push_flight_features(online, replayed.conn, FlightSelection.days(SCORED_DAY, SCORED_DAY))
    offline = replayed.conn.execute(
        f"SELECT {', '.join(ONLINE_COLUMNS)} FROM {TABLE} WHERE flight_date = $d ORDER BY ALL", {"d": SCORED_DAY}
    ).fetchall()
    assert result.flights == len(offline) == 1006
    carriers = replayed.conn.execute(
        f"SELECT count(DISTINCT carrier) FROM {TABLE} WHERE flight_date = $d", {"d": SCORED_DAY}
    ).fetchone()[0]
    assert (result.airports, result.carriers, result.ttl_seconds) == (3, carriers, 3600) and carriers > 10
    keys = [FlightKey(*row[:5]) for row in offline]
    lookups = online.read(keys)
    mismatches = [
        (lk.key, column, lk.row[column], value)
        for lk, row in zip(lookups, offline, strict=True)
        for column, value in zip(ONLINE_COLUMNS, row, strict=True)
        if not same(lk.row[column], value) and not (value is None and lk.row[column] is None)
    ]
    assert mismatches == []
    assert not any(lk.airport_state_online for lk in lookups)  # a replayed day's rows already know everything
    assert all(lk.pushed_at == result.pushed_at for lk in lookups)
    # Some values a person would check: the types and nulls the offline table has.
    nulls = {c: sum(lk.row[c] is None for lk in lookups) for c in ("plane_age", "origin_mean_dep_delay_2h")}
    assert all(n > 0 for n in nulls.values()), nulls
    assert all(math.isfinite(lk.row["temp"]) for lk in lookups if lk.row["temp"] is not None)

    # Freshness as the Dagster metadata shows it: the newest known_at of each family, all before the pushed flights.
    newest = {
        c: max(r[ONLINE_COLUMNS.index(c)] for r in offline if r[ONLINE_COLUMNS.index(c)] is not None)
        for c in KNOWN_AT_COLUMNS
    }
    assert result.known_at == newest
    assert result.newest_known_at == max(newest.values()) <= result.last_predicted_at
    meta = result.metadata()
    assert meta["dagster/row_count"] == 1006 and meta["ttl_seconds"] == 3600
    assert meta["newest_known_at"] == result.newest_known_at.isoformat()
    assert meta["key_prefix"] == online.settings.prefix
    assert online.last_push()["flights"] == 1006

    client = online.client
    flight_key = online.flight_key(keys[0])
    assert flight_key == (
        f"{online.settings.prefix}:v1:flight:2013-07-11:{keys[0].carrier}:{keys[0].flight}:"
        f"{keys[0].origin}:{keys[0].sched_dep_time:04d}"
    )
    assert 3590 <= client.ttl(flight_key) <= 3600
    assert 3590 <= client.ttl(online.airport_key("EWR")) <= 3600
    assert client.ttl(online.pushed_key(SCORED_DAY)) > 3600
    names = {k.decode().split(":")[3] for k in client.scan_iter(match=f"{online.settings.prefix}:*", count=1000)}
    assert names == {"flight", "airport", "carrier", "pushed", "meta"}


def test_the_entities_a_push_writes(online: OnlineStore, replayed):
    """Each origin gets its departures and cancellations of the pushed window; each carrier its history."""
    push_flight_features(online, replayed.conn, FlightSelection.days(SCORED_DAY, SCORED_DAY))
    ewr = online.read_airport("EWR")
    first_p, last_p = replayed.conn.execute(
        f"SELECT min(predicted_at), max(predicted_at) FROM {TABLE} WHERE flight_date = $d AND origin = 'EWR'",
        {"d": SCORED_DAY},
    ).fetchone()
    start = first_p - dt.timedelta(hours=2)
    assert codec.from_micros(ewr.complete_from_us) == start
    departures = replayed.conn.execute(
        """SELECT count(*) FROM core.fct_flights WHERE origin = 'EWR' AND actual_dep_utc IS NOT NULL
           AND greatest(actual_dep_utc, timezone('America/New_York', CAST(flight_date AS TIMESTAMP)))
               BETWEEN $s AND $e""",
        {"s": start, "e": last_p},
    ).fetchone()[0]
    assert len(ewr.departures) == departures > 300
    assert ewr.known_at <= last_p
    ua = online.read_carrier("UA")
    row = replayed.conn.execute(
        f"SELECT predicted_at, carrier_delay_rate_7d, carrier_n_28d FROM {TABLE} WHERE carrier = 'UA' "
        "ORDER BY predicted_at DESC LIMIT 1"
    ).fetchone()
    assert (ua["as_of"], ua["carrier_delay_rate_7d"], ua["carrier_n_28d"]) == row
    assert ua["known_at"] is not None and ua["known_at"] <= ua["as_of"]
    # A push of an older window does not replace a carrier's newer snapshot.
    push_flight_features(online, replayed.conn, FlightSelection.days(dt.date(2013, 7, 5), dt.date(2013, 7, 5)))
    assert online.read_carrier("UA")["as_of"] == row[0]


def test_upcoming_flights_by_predicted_at_window(online: OnlineStore, replayed):
    start = dt.datetime(2013, 7, 11, 16, 0, tzinfo=UTC)
    result = push_flight_features(
        online, replayed.conn, FlightSelection.predicted_between(start, start + dt.timedelta(hours=2))
    )
    expected = replayed.conn.execute(
        f"SELECT count(*) FROM {TABLE} WHERE predicted_at >= $s AND predicted_at < $e",
        {"s": start, "e": start + dt.timedelta(hours=2)},
    ).fetchone()[0]
    assert result.flights == expected > 50
    assert start <= result.first_predicted_at and result.last_predicted_at < start + dt.timedelta(hours=2)
    with pytest.raises(ValueError):
        FlightSelection.predicted_between(start, start)
    with pytest.raises(ValueError):
        FlightSelection.predicted_between(dt.datetime(2013, 7, 11), dt.datetime(2013, 7, 12))


def test_missing_flights_say_why(online: OnlineStore, replayed):
    push_flight_features(online, replayed.conn, FlightSelection.days(SCORED_DAY, SCORED_DAY))
    pushed = FlightKey(
        *replayed.conn.execute(
            f"SELECT flight_date, carrier, flight, origin, sched_dep_time FROM {TABLE} WHERE flight_date = $d LIMIT 1",
            {"d": SCORED_DAY},
        ).fetchone()
    )
    online.client.delete(online.flight_key(pushed))  # as if its TTL had run out
    unknown = FlightKey(SCORED_DAY, "ZZ", 1, "EWR", 900)
    expired, never = online.read([pushed, unknown])
    assert (expired.status, never.status) == (404, 404)
    assert "expired" in expired.reason and "no features were pushed" in never.reason


def test_redis_down_is_a_clear_error_fast(redis_url):
    import time

    from ml_platform.serving.online_store import OnlineStoreUnavailable
    from ml_platform_tests.conftest import free_port

    dead = OnlineStore(OnlineStoreSettings(f"redis://127.0.0.1:{free_port()}/0", "test:down"))
    started = time.monotonic()
    with pytest.raises(OnlineStoreUnavailable, match=r"Redis at redis://127\.0\.0\.1:\d+/0 is unreachable"):
        dead.read([FlightKey(SCORED_DAY, "UA", 1, "EWR", 900)])
    with pytest.raises(OnlineStoreUnavailable):
        dead.ping()
    assert time.monotonic() - started < 5


def test_rows_pushed_with_another_column_layout_are_refused_with_the_reason(online: OnlineStore, replayed):
    push_flight_features(online, replayed.conn, FlightSelection.days(SCORED_DAY, SCORED_DAY))
    key = FlightKey(
        *replayed.conn.execute(
            f"SELECT flight_date, carrier, flight, origin, sched_dep_time FROM {TABLE} WHERE flight_date = $d LIMIT 1",
            {"d": SCORED_DAY},
        ).fetchone()
    )
    packed = codec.unpack(online.client.get(online.flight_key(key)))
    online.client.set(online.flight_key(key), codec.pack(["0ldlayout000", *packed[1:-1]]), ex=60)
    (lookup,) = online.read([key])
    assert lookup.row is None and lookup.status == 422 and "push them again" in lookup.reason


def test_the_online_model_input_is_the_batch_model_input_to_the_bit(replayed):
    """``features_frame`` (from the row dicts the store returns) equals ``to_pandas_features`` (what batch
    scoring gives the model): values, NaN/None, dtypes and column order, for every flight of a real day."""
    import pandas as pd

    from ml_platform.domain.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES
    from ml_platform.pipeline.model import to_pandas_features
    from ml_platform.serving.scoring import features_frame

    rows = replayed.rows(SCORED_DAY)
    columns = [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]
    for n in (1, 2, rows.height):
        pd.testing.assert_frame_equal(
            features_frame(rows.head(n).to_dicts(), columns),
            to_pandas_features(rows.head(n), columns),
            check_exact=True,
        )
    reordered = [*CATEGORICAL_FEATURES, *reversed(NUMERIC_FEATURES)]
    pd.testing.assert_frame_equal(
        features_frame(rows.to_dicts(), reordered), to_pandas_features(rows, reordered), check_exact=True
    )
