"""Schema changes in the lake, the weather rules on bad input, and the lake on S3."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from ml_platform.io.store import open_store
from ml_platform.io.warehouse import connect_warehouse
from ml_platform.pipeline import lake as lake_layout
from ml_platform.pipeline.warehouse import (
    SchemaChangeError,
    load_dims,
    load_staging_flights,
    load_staging_weather,
    sync_columns,
)
from ml_platform_tests.warehouses import embedded_config

from .conftest import JAN1, JAN2, JAN3
from .lakes import (
    TABLES,
    csv_bytes,
    csv_lines,
    load_all,
    snapshot,
    weather_frame,
    write_flights_day,
    write_reference_tables,
    write_weather_days,
)

# ---------------------------------------------------------------- schema evolution


def test_a_new_raw_column_is_kept_as_extra(conn, small_lake):
    store, lake = small_lake
    header, lines = csv_lines(JAN2)
    reasons = ["weather" if i % 2 else "" for i in range(len(lines))]
    write_flights_day(
        store,
        JAN2,
        {
            "flights_2013-01-02.csv": csv_bytes(
                header + ",Delay Reason", [f"{row},{r}" for row, r in zip(lines, reasons, strict=True)]
            ),
        },
    )
    load_dims(conn, lake)
    result = load_staging_flights(conn, lake, JAN1, JAN3)
    assert result.added_columns == ("extra_delay_reason",)
    types = dict(
        conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'flights' AND table_schema = 'staging'"
        ).fetchall()
    )
    assert types["extra_delay_reason"] == "VARCHAR"
    per_day = dict(
        conn.execute("SELECT flight_date, count(extra_delay_reason) FROM staging.flights GROUP BY ALL").fetchall()
    )
    assert per_day == {JAN1: 0, JAN2: len(lines) // 2, JAN3: 0}
    # Loading again (or loading days without the column) adds nothing and keeps the column.
    assert load_staging_flights(conn, lake, JAN3, JAN3).added_columns == ()
    assert "extra_delay_reason" in {r[0] for r in conn.execute("DESCRIBE staging.flights").fetchall()}


def _rewrite(store, day, change):
    frame = lake_layout.read_partition(store, "flights", day)
    lake_layout.write_partition(store, "flights", day, change(frame))


def test_a_removed_required_column_stops_the_load_before_any_write(conn, small_lake):
    store, lake = small_lake
    load_all(conn, lake)
    before = {t: snapshot(conn, t) for t in TABLES}
    # Only the middle day lost arr_delay: read together, the files would silently give NULLs.
    _rewrite(store, JAN2, lambda f: f.drop("arr_delay"))
    with pytest.raises(SchemaChangeError, match="arr_delay") as error:
        load_staging_flights(conn, lake, JAN1, JAN3)
    assert error.value.column == "arr_delay" and "date=2013-01-02" in str(error.value)
    assert {t: snapshot(conn, t) for t in TABLES} == before


def test_a_type_change_stops_the_load(conn, small_lake):
    store, lake = small_lake
    load_all(conn, lake)
    before = snapshot(conn, "staging.flights")
    _rewrite(store, JAN3, lambda f: f.with_columns(pl.col("dep_delay").cast(pl.Int64)))
    with pytest.raises(SchemaChangeError, match="dep_delay") as error:
        load_staging_flights(conn, lake, JAN1, JAN3)
    assert "BIGINT" in str(error.value) and error.value.column == "dep_delay"
    assert snapshot(conn, "staging.flights") == before


def test_an_optional_column_missing_reads_as_null(conn, small_lake):
    store, lake = small_lake
    _rewrite(store, JAN2, lambda f: f.drop("air_time"))  # the landing contract does not require air_time
    flights = load_all(conn, lake)[0]
    assert flights.total.quarantined == {}
    per_day = dict(conn.execute("SELECT flight_date, count(air_time) FROM staging.flights GROUP BY ALL").fetchall())
    assert per_day[JAN2] == 0 and per_day[JAN1] > 0


def test_sync_columns(conn):
    conn.execute("CREATE SCHEMA staging")
    conn.execute("CREATE TABLE staging.t (a INTEGER, b VARCHAR)")
    assert sync_columns(conn, "staging.t", "SELECT CAST(1 AS SMALLINT) AS a, 'x' AS b, CAST(2.5 AS DOUBLE) AS c") == [
        "c"
    ]
    assert {r[0]: r[1] for r in conn.execute("DESCRIBE staging.t").fetchall()}["c"] == "DOUBLE"
    with pytest.raises(SchemaChangeError, match="'a'.*VARCHAR"):
        sync_columns(conn, "staging.t", "SELECT 'one' AS a")
    with pytest.raises(SchemaChangeError, match="'a'.*BIGINT"):
        sync_columns(conn, "staging.t", "SELECT CAST(1 AS BIGINT) AS a")  # narrowing
    with pytest.raises(SchemaChangeError, match="'b'.*no longer delivered"):
        sync_columns(conn, "staging.t", "SELECT 1 AS a", required=("a", "b"))
    with pytest.raises(SchemaChangeError, match="Bad Name"):
        sync_columns(conn, "staging.t", 'SELECT 1 AS a, 2 AS "Bad Name", 3 AS d')
    assert "d" not in {r[0] for r in conn.execute("DESCRIBE staging.t").fetchall()}  # nothing added on error
    with pytest.raises(ValueError, match="not an allowed identifier"):
        sync_columns(conn, "staging.t; DROP TABLE x", "SELECT 1 AS a")


# ---------------------------------------------------------------- weather on bad input


def _weather_day(day):
    return weather_frame().filter(pl.col("_day") == day)


def test_weather_bad_rows_and_impossible_values(conn, small_lake):
    store, lake = small_lake
    jan2 = _weather_day(JAN2)
    first = jan2.head(1)
    refetched = first.with_columns(
        pl.col("temp") + 1, pl.lit(dt.datetime(2026, 11, 2, tzinfo=dt.UTC)).alias("_fetched_at")
    )
    broken = jan2.slice(1, 1).with_columns(pl.lit("yesterday").alias("time_hour"))
    wrong_day = _weather_day(JAN3).head(1).with_columns(pl.lit(JAN2).alias("_day"))  # a 01-03 hour inside 01-02
    impossible = jan2.slice(2, 1).with_columns(pl.lit(200.0).alias("temp"), pl.lit(-5.0).alias("humid"))
    frame = pl.concat([first, refetched, broken, wrong_day, impossible, jan2.slice(3)])
    write_weather_days(store, [JAN2], frame)
    result = load_staging_weather(conn, lake, JAN1, JAN3)

    day = result.days[JAN2]
    assert day.input_rows == len(jan2) + 2
    assert day.quarantined == {"duplicate_key": 1, "bad_type": 1, "date_mismatch": 1}
    assert day.loaded_rows == len(jan2) - 1 and result.unbalanced_days() == []
    # The broken hour is now a 1-hour gap, filled between its neighbours.
    assert day.added_rows == 1
    rules = dict(conn.execute("SELECT rule, detail FROM quarantine.weather").fetchall())
    assert "yesterday" in rules["bad_type"] and "2013-01-02" in rules["date_mismatch"]
    kept_temp = conn.execute(
        "SELECT temp FROM staging.weather WHERE origin = ? AND observed_at_utc = CAST(? AS TIMESTAMPTZ)",
        [first["origin"][0], first["time_hour"][0]],
    ).fetchone()[0]
    assert kept_temp == first["temp"][0] + 1  # the later fetch wins
    row = conn.execute(
        "SELECT temp, humid, has_impossible_value, impossible_columns FROM staging.weather "
        "WHERE origin = ? AND observed_at_utc = CAST(? AS TIMESTAMPTZ)",
        [impossible["origin"][0], impossible["time_hour"][0]],
    ).fetchone()
    assert row == (None, None, True, "temp,humid")
    raw = json.loads(conn.execute("SELECT raw_values FROM quarantine.weather WHERE rule = 'bad_type'").fetchone()[0])
    assert raw["time_hour"] == "yesterday"


def test_weather_gap_filling_rule(conn, small_lake):
    store, lake = small_lake
    jan2 = _weather_day(JAN2).filter(pl.col("origin") == "LGA").sort("time_hour")
    before, after = jan2.row(4, named=True), jan2.row(8, named=True)  # 04:00 and 08:00 local
    gap3 = jan2.slice(5, 3)["time_hour"].to_list()  # 05, 06, 07 local
    # EWR loses 4 hours (09-12): too long, stays missing.
    ewr = _weather_day(JAN2).filter(pl.col("origin") == "EWR").sort("time_hour")["time_hour"].slice(9, 4).to_list()
    frame = _weather_day(JAN2).filter(
        ~((pl.col("origin") == "LGA") & pl.col("time_hour").is_in(gap3))
        & ~((pl.col("origin") == "EWR") & pl.col("time_hour").is_in(ewr))
    )
    write_weather_days(store, [JAN2], frame)
    load_staging_weather(conn, lake, JAN2, JAN2)
    rows = conn.execute(
        "SELECT observed_at_local, temp, wind_dir, known_at_utc FROM staging.weather "
        "WHERE origin = 'LGA' AND is_imputed ORDER BY observed_at_utc"
    ).fetchall()
    assert [r[0].hour for r in rows] == [5, 6, 7]
    for k, (_, temp, wind_dir, known_at) in enumerate(rows, start=1):
        assert temp == pytest.approx(before["temp"] + (after["temp"] - before["temp"]) * k / 4)
        assert wind_dir == (before["wind_dir"] if k <= 2 else after["wind_dir"])  # nearer report, tie -> earlier
        assert known_at == dt.datetime(2013, 1, 2, 13, 51, tzinfo=dt.UTC)  # 08:00 EST report + 51 min
    assert conn.execute("SELECT count(*) FROM staging.weather WHERE origin = 'EWR' AND is_imputed").fetchone()[0] == 0
    assert (
        conn.execute(
            "SELECT count(*) FROM staging.weather WHERE origin = 'EWR' AND weather_date = ?", [JAN2]
        ).fetchone()[0]
        == 20
    )


# ---------------------------------------------------------------- the lake on S3


def test_the_same_loads_read_the_lake_from_s3(s3_env, tmp_path):
    """DuckDB's httpfs (loaded by path from its wheel) against a real S3 endpoint (moto on 127.0.0.1), with
    the S3 secret made from the AWS_* variables: paths are plain '/'-joined URLs."""
    lake = f"s3://{s3_env}/lake"
    store = open_store(lake)
    for day in (JAN1, JAN2):
        write_flights_day(store, day)
    write_weather_days(store, (JAN1, JAN2))
    write_reference_tables(store)

    conn = connect_warehouse(embedded_config(tmp_path / "warehouse"), lake_url=lake)
    flights, facts, weather = load_all(conn, lake, JAN1, JAN2)
    assert flights.days[JAN1].loaded_rows == 842 and flights.days[JAN2].loaded_rows == 943
    assert facts.total.loaded_rows == 842 + 943
    assert weather.days[JAN1].loaded_rows == 67 and weather.days[JAN1].added_rows == 2
    conn.close()
