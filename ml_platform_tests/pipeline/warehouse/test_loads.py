"""Range loads on small real lakes: idempotency, atomicity, and the quarantine rules on bad input.

Bad inputs are real 2013-01-01 lines edited the way a delivery goes wrong; each case
says which rule must catch it and checks nothing was lost (input = loaded + quarantined).
"""

from __future__ import annotations

import json

import duckdb
import polars as pl
import pytest

from ml_platform.devdata.reference_data import read_reference_table
from ml_platform.pipeline.warehouse import flight_rules as contract
from ml_platform.pipeline.warehouse import (
    load_dims,
    load_fct_flights,
    load_staging_flights,
    load_staging_weather,
)
from ml_platform_tests.warehouses import connect, embedded_config

from .conftest import JAN1, JAN2, JAN3
from .lakes import TABLES, csv_bytes, csv_lines, load_all, snapshot, write_flights_day, write_reference_tables

FIELDS = contract.SOURCE_COLUMNS


def edit(line: str, **values: str) -> str:
    """A CSV line with some fields replaced."""
    fields = line.split(",")
    for name, value in values.items():
        fields[FIELDS.index(name)] = value
    return ",".join(fields)


def field(line: str, name: str) -> str:
    return line.split(",")[FIELDS.index(name)]


def quarantine(conn, day=JAN1) -> list[tuple]:
    return conn.execute(
        "SELECT rule, detail, _source_file, _source_line, raw_values FROM quarantine.flights "
        "WHERE flight_date = ? ORDER BY _source_file, _source_line",
        [day],
    ).fetchall()


# ---------------------------------------------------------------- idempotency and atomicity


def test_loading_a_range_twice_gives_identical_tables(conn, small_lake):
    _, lake = small_lake
    first = load_all(conn, lake)
    before = {t: snapshot(conn, t) for t in TABLES}
    second = load_all(conn, lake)
    assert {t: snapshot(conn, t) for t in TABLES} == before
    assert [r.days for r in first] == [r.days for r in second]
    assert first[0].total.input_rows == 842 + 943 + 914  # the three days' source lines
    assert all(r.unbalanced_days() == [] for r in first)


def test_a_day_loaded_alone_equals_the_same_day_in_a_range(tmp_path, small_lake):
    """Weather gap filling reads the neighbouring days, so a day's rows do not depend on the range."""
    _, lake = small_lake
    alone, in_range = connect(embedded_config(tmp_path / "a")), connect(embedded_config(tmp_path / "b"))
    load_all(alone, lake, JAN2, JAN2)
    load_all(in_range, lake, JAN1, JAN3)
    for table in ("staging.flights", "core.fct_flights", "staging.weather"):
        key = "weather_date" if "weather" in table else "flight_date"
        in_range.execute(f"DELETE FROM {table} WHERE {key} <> ?", [JAN2])
        assert snapshot(alone, table) == snapshot(in_range, table), table
    # JFK and EWR miss 2013-01-01 12:00 local; a one-day load of 01-01 still fills it.
    load_staging_weather(alone, lake, JAN1, JAN1)
    assert (
        alone.execute("SELECT count(*) FROM staging.weather WHERE is_imputed AND weather_date = ?", [JAN1]).fetchone()[
            0
        ]
        == 2
    )


class FailingConnection:
    """A connection that fails the statement starting with ``prefix``, like a crash mid-load."""

    def __init__(self, conn, prefix: str):
        self.conn, self.prefix, self.seen = conn, prefix, []

    def execute(self, sql, params=None):
        statement = " ".join(sql.split())
        self.seen.append(statement[:40])
        if statement.startswith(self.prefix):
            raise duckdb.IOException(f"injected failure at: {statement[:60]}")
        return self.conn.execute(sql, params)

    def __getattr__(self, name):
        return getattr(self.conn, name)


@pytest.mark.parametrize(
    ("load", "prefix"),
    [
        ("flights", "INSERT INTO staging.flights"),
        ("flights", "INSERT INTO quarantine.flights"),
        ("facts", "INSERT INTO core.fct_flights"),
        ("weather", "INSERT INTO quarantine.weather"),
    ],
)
def test_a_failed_load_leaves_the_previous_rows(conn, small_lake, load, prefix):
    store, lake = small_lake
    load_all(conn, lake)
    before = {t: snapshot(conn, t) for t in TABLES}
    # New content for day 1 (one line fewer), then a failure after the DELETEs ran.
    header, lines = csv_lines(JAN1)
    write_flights_day(store, JAN1, {"flights_2013-01-01.csv": csv_bytes(header, lines[1:])})
    failing = FailingConnection(conn, prefix)
    with pytest.raises(duckdb.IOException, match="injected"):
        if load == "flights":
            load_staging_flights(failing, lake, JAN1, JAN3)
        elif load == "facts":
            load_fct_flights(failing, JAN1, JAN3)
        else:
            load_staging_weather(failing, lake, JAN1, JAN3)
    assert any(s.startswith("DELETE") for s in failing.seen)  # the failure came after the deletes
    assert {t: snapshot(conn, t) for t in TABLES} == before
    assert load_staging_flights(conn, lake, JAN1, JAN3).total.input_rows == 842 - 1 + 943 + 914


def test_a_real_sql_failure_rolls_back_too(conn, small_lake):
    """No mock: a NOT NULL column the load does not fill makes the INSERT fail after the DELETE."""
    _, lake = small_lake
    load_all(conn, lake)
    before = snapshot(conn, "staging.flights")
    # DuckLake refuses SET NOT NULL on a column added by ALTER TABLE (no column statistics yet):
    # the table is rewritten with the column filled, then constrained.
    conn.execute("CREATE OR REPLACE TABLE staging.flights AS SELECT *, 'x' AS reviewed_by FROM staging.flights")
    conn.execute("ALTER TABLE staging.flights ALTER COLUMN reviewed_by SET NOT NULL")
    with pytest.raises(duckdb.ConstraintException):
        load_staging_flights(conn, lake, JAN1, JAN3)
    assert [row[:-1] for row in snapshot(conn, "staging.flights")] == before


def test_flights_need_the_dimensions(conn, small_lake):
    _, lake = small_lake
    with pytest.raises(RuntimeError, match="dim_carriers is empty"):
        load_staging_flights(conn, lake, JAN1, JAN1)


def test_a_range_without_lake_partitions_empties_that_range(conn, small_lake):
    store, lake = small_lake
    load_all(conn, lake)
    store.delete("raw/flights/date=2013-01-02/part-0.parquet")
    result = load_staging_flights(conn, lake, JAN2, JAN2)
    assert result.total.input_rows == 0 and result.days[JAN2].input_rows == 0
    assert conn.execute("SELECT count(*) FROM staging.flights WHERE flight_date = ?", [JAN2]).fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM staging.flights").fetchone()[0] == 842 + 914


# ---------------------------------------------------------------- the quarantine rules


def test_bad_rows_are_quarantined_with_their_rule(conn, small_lake):
    store, lake = small_lake
    header, lines = csv_lines(JAN1)
    bad = {
        # line number in the file (header = 1) -> (edited line, rule, words the detail must contain)
        2: (edit(lines[0], dep_delay="99999"), "out_of_range", "dep_delay=99999"),
        3: (edit(lines[1], sched_dep_time="1275"), "out_of_range", "sched_dep_time=1275"),
        4: (edit(lines[2], distance="0", month="13"), "out_of_range", "month=13; distance=0"),
        5: (edit(lines[3], arr_delay="1.5"), "bad_type", "arr_delay=1.5"),
        6: (edit(lines[4], flight="UA12", air_time="n/a"), "bad_type", "flight=UA12; air_time=n/a"),
        7: (edit(lines[5], carrier="ZZ"), "unknown_carrier", "carrier ZZ"),
        8: (edit(lines[6], origin="BOS"), "unknown_origin", "origin BOS"),
        9: (edit(lines[7], carrier=""), "missing_key", "carrier is empty"),
        10: (edit(lines[8], day="2"), "date_mismatch", "2013-1-2 is not the partition day 2013-01-01"),
        11: (lines[9] + ",extra", "parse_error", "expected 19 fields, found 20"),
        12: (edit(lines[10], dest="XXX"), "unknown_dest", "dest XXX"),
        13: (edit(lines[11], time_hour="2013-01-01 10:00"), "bad_type", "time_hour=2013-01-01 10:00"),
    }
    edited = [bad[i + 2][0] if i + 2 in bad else line for i, line in enumerate(lines)]
    write_flights_day(store, JAN1, {"flights_2013-01-01.csv": csv_bytes(header, edited)})
    result = load_all(conn, lake, JAN1, JAN1)[0]

    rows = quarantine(conn)
    assert [(r[0], r[3]) for r in rows] == [(rule, n) for n, (_, rule, _) in sorted(bad.items())]
    for (rule, detail, source_file, _line, raw), (_n, (text, _, words)) in zip(rows, sorted(bad.items()), strict=False):
        assert words in detail, (rule, detail)
        assert source_file == "flights_2013-01-01.csv"
        if rule != "parse_error":  # the raw values are kept as delivered
            assert json.loads(raw) == {
                c: (v if v not in ("", "NA") else None) for c, v in zip(FIELDS, text.split(","), strict=False)
            }
    day = result.days[JAN1]
    assert day.input_rows == 842 and day.loaded_rows == 842 - len(bad)
    assert day.quarantined == {
        "out_of_range": 3,
        "bad_type": 3,
        "unknown_carrier": 1,
        "unknown_origin": 1,
        "missing_key": 1,
        "date_mismatch": 1,
        "parse_error": 1,
        "unknown_dest": 1,
    }
    assert conn.execute("SELECT count(*) FROM staging.flights WHERE flight_date = ?", [JAN1]).fetchone()[
        0
    ] == 842 - len(bad)


def test_a_duplicate_across_two_deliveries_keeps_the_later_file(conn, small_lake):
    store, lake = small_lake
    header, lines = csv_lines(JAN1)
    # The second delivery repeats the first flight (UA 1545 EWR 515) with a corrected delay, and adds nothing else.
    corrected = edit(lines[0], dep_delay="3", dep_time="518")
    write_flights_day(
        store,
        JAN1,
        {
            "flights_2013-01-01.csv": csv_bytes(header, lines),
            "flights_2013-01-01_b.csv": csv_bytes(header, [corrected]),
        },
    )
    result = load_all(conn, lake, JAN1, JAN1)[0]
    assert result.days[JAN1].input_rows == 843 and result.days[JAN1].loaded_rows == 842
    assert result.days[JAN1].quarantined == {"duplicate_key": 1}
    kept = conn.execute(
        "SELECT _source_file, _source_line, dep_delay FROM staging.flights WHERE carrier = 'UA' AND flight = 1545 AND flight_date = ?",
        [JAN1],
    ).fetchall()
    assert kept == [("flights_2013-01-01_b.csv", 2, 3)]
    ((rule, detail, source_file, line, raw),) = quarantine(conn)
    assert (rule, source_file, line) == ("duplicate_key", "flights_2013-01-01.csv", 2)
    assert "flights_2013-01-01_b.csv line 2" in detail and json.loads(raw)["dep_delay"] == "2"


def test_a_flight_without_a_plane_row_is_loaded(conn, small_lake):
    store, lake = small_lake
    header, lines = csv_lines(JAN1)
    write_flights_day(
        store, JAN1, {"flights_2013-01-01.csv": csv_bytes(header, [edit(lines[0], tailnum="N0PLANE")] + lines[1:])}
    )
    load_all(conn, lake, JAN1, JAN1)
    row = conn.execute(
        "SELECT has_tailnum, has_plane, plane_year, seats, carrier_name FROM core.fct_flights WHERE tailnum = 'N0PLANE'"
    ).fetchone()
    assert row == (True, False, None, None, "United Air Lines Inc.")
    assert conn.execute("SELECT count(*) FROM quarantine.flights").fetchone()[0] == 0


def test_a_partition_whose_rows_all_fail_lands_wholly_in_quarantine(conn, small_lake):
    store, lake = small_lake
    header, lines = csv_lines(JAN2)
    # Every line of the 01-02 delivery says 2013-01-03: the file was put in the wrong day.
    write_flights_day(store, JAN2, {"flights_2013-01-02.csv": csv_bytes(header, [edit(row, day="3") for row in lines])})
    flights, facts, _ = load_all(conn, lake)
    assert flights.days[JAN2].loaded_rows == 0
    assert flights.days[JAN2].quarantined == {"date_mismatch": 943}
    assert conn.execute("SELECT count(*) FROM quarantine.flights WHERE flight_date = ?", [JAN2]).fetchone()[0] == 943
    assert facts.days[JAN2].loaded_rows == 0 and facts.days[JAN3].loaded_rows == 914
    assert flights.unbalanced_days() == []


def test_a_later_clean_delivery_releases_the_quarantined_rows(conn, small_lake):
    store, lake = small_lake
    header, lines = csv_lines(JAN1)
    write_flights_day(
        store, JAN1, {"flights_2013-01-01.csv": csv_bytes(header, [edit(row, carrier="ZZ") for row in lines])}
    )
    load_all(conn, lake, JAN1, JAN1)
    assert conn.execute("SELECT count(*) FROM quarantine.flights").fetchone()[0] == 842
    write_flights_day(store, JAN1)
    load_staging_flights(conn, lake, JAN1, JAN1)
    assert conn.execute("SELECT count(*) FROM quarantine.flights").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM staging.flights").fetchone()[0] == 842


# ---------------------------------------------------------------- dimensions


def test_dimensions_and_the_airports_supplement(conn, small_lake):
    store, lake = small_lake
    counts = load_dims(conn, lake)
    assert counts["core.dim_airports"].added_rows == 4
    rows = conn.execute(
        "SELECT faa, tzone, source, seed_version FROM core.dim_airports WHERE faa IN ('SJU','BQN','STT','PSE','JFK') ORDER BY faa"
    ).fetchall()
    assert rows == [
        ("BQN", "America/Puerto_Rico", "supplement", "1"),
        ("JFK", "America/New_York", "ops", None),
        ("PSE", "America/Puerto_Rico", "supplement", "1"),
        ("SJU", "America/Puerto_Rico", "supplement", "1"),
        ("STT", "America/St_Thomas", "supplement", "1"),
    ]
    # Once the operational table knows SJU, its row wins over the seed.
    airports = read_reference_table("airports")
    sju = pl.DataFrame(
        [
            {
                "faa": "SJU",
                "name": "San Juan (ops)",
                "lat": 18.44,
                "lon": -66.0,
                "alt": 9,
                "tz": -4,
                "dst": "N",
                "tzone": "America/Puerto_Rico",
            }
        ],
        schema=airports.schema,
    )
    # Planes with a tail number twice: the first row is kept, the second quarantined, no flight doubles.
    planes = read_reference_table("planes")
    write_reference_tables(store, airports=pl.concat([airports, sju]), planes=pl.concat([planes, planes.head(1)]))
    counts = load_dims(conn, lake)
    assert counts["core.dim_airports"].added_rows == 3
    assert conn.execute("SELECT name, source FROM core.dim_airports WHERE faa = 'SJU'").fetchall() == [
        ("San Juan (ops)", "ops")
    ]
    assert counts["core.dim_planes"].quarantined == {"duplicate_key": 1}
    assert conn.execute("SELECT rule FROM quarantine.dim_planes").fetchall() == [("duplicate_key",)]
    flights = load_staging_flights(conn, lake, JAN1, JAN3)
    assert load_fct_flights(conn, JAN1, JAN3).total.loaded_rows == flights.total.loaded_rows
