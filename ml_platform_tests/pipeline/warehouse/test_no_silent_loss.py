"""Defects found by fault injection on 2013-01-05 (720 real rows), each now caught where it happens.

- A stray quote made the CSV reader swallow the rest of the file into one field: 709 rows lost
  with every check green. Now the file is read line by line, and the warehouse compares the rows
  it read with the file's own line count.
- ``flight = -3`` passed the quarantine rules and then failed the staging contract, stopping the
  day's 714 good rows. Now every bound of the contract is a quarantine rule too.
- A 10-million-character tail number reached ``core.fct_flights``. Now values are bounded at the
  landing (the row is kept with its reason) and by the contract's lengths.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ml_platform.domain.contracts import StagingFlights, check_contract
from ml_platform.domain.flights import BOUNDS, MAX_LENGTH
from ml_platform.pipeline import lake as lake_io
from ml_platform.pipeline.warehouse import flight_rules, load_dims, load_staging_flights
from ml_platform.pipeline.warehouse.common import read_days

from .lakes import csv_bytes, csv_lines, write_flights_day, write_reference_tables

JAN5 = dt.date(2013, 1, 5)
FIELDS = flight_rules.SOURCE_COLUMNS


def _edit(line: str, **values: str) -> str:
    fields = line.split(",")
    for name, value in values.items():
        fields[FIELDS.index(name)] = value
    return ",".join(fields)


def _load(conn, store, lake, lines: list[str], header: str):
    write_reference_tables(store)
    load_dims(conn, lake)
    write_flights_day(store, JAN5, {f"flights_{JAN5}.csv": csv_bytes(header, lines)})
    return load_staging_flights(conn, lake, JAN5, JAN5)


def _quarantined(conn) -> list[tuple]:
    return conn.execute(
        "SELECT rule, detail, _source_line, raw_values FROM quarantine.flights ORDER BY _source_line"
    ).fetchall()


def test_a_stray_quote_loses_no_row(conn, small_lake):
    store, lake = small_lake
    header, lines = csv_lines(JAN5)
    assert len(lines) == 720
    lines[10] = _edit(lines[10], tailnum='"' + lines[10].split(",")[FIELDS.index("tailnum")])
    result = _load(conn, store, lake, lines, header)
    day = result.days[JAN5]
    assert (day.source_rows, day.input_rows, day.loaded_rows, day.quarantined_rows) == (720, 720, 719, 1)
    assert day.balanced
    [(rule, detail, line, _)] = _quarantined(conn)
    assert (rule, line) == ("parse_error", 12) and "unbalanced quote" in detail


def test_rows_read_must_match_the_files_own_line_count(conn, small_lake):
    """If a reader ever lost lines again, the day would be unbalanced (the check fails), not green."""
    store, lake = small_lake
    header, lines = csv_lines(JAN5)
    frame = write_flights_day(store, JAN5, {f"flights_{JAN5}.csv": csv_bytes(header, lines)})
    lake_io.write_partition(store, "flights", JAN5, frame.head(11))  # as the broken reader did
    write_reference_tables(store)
    load_dims(conn, lake)
    day = load_staging_flights(conn, lake, JAN5, JAN5).days[JAN5]
    assert (day.source_rows, day.input_rows) == (720, 11) and not day.balanced


def test_every_bound_of_the_contract_is_a_quarantine_rule(conn, small_lake):
    """One rule set: a value just outside each bound is quarantined with its column named, the
    good rows all load, and the staging contract passes on what was loaded."""
    store, lake = small_lake
    header, lines = csv_lines(JAN5)
    broken = {}
    for i, (column, (low, high)) in enumerate(BOUNDS.items()):
        value = low - 1 if column != "sched_dep_time" else 2401
        broken[2 * i] = (column, _edit(lines[2 * i], **{column: str(value)}))
        broken[2 * i + 1] = (column, _edit(lines[2 * i + 1], **{column: str(high + 1)}))
    for j, (column, limit) in enumerate(MAX_LENGTH.items(), start=len(broken)):
        broken[j] = (column, _edit(lines[j], **{column: "N" * (limit + 1)}))
    cancelled = next(i for i, line in enumerate(lines) if line.split(",")[FIELDS.index("dep_time")] == "NA")
    broken[cancelled] = ("dep_delay", _edit(lines[cancelled], dep_delay="5"))
    for i, (_, line) in broken.items():
        lines[i] = line
    result = _load(conn, store, lake, lines, header)
    day = result.days[JAN5]
    assert day.balanced and day.quarantined_rows == len(broken) and day.loaded_rows == 720 - len(broken)
    details = {line: (rule, detail) for rule, detail, line, _ in _quarantined(conn)}
    for i, (column, _) in broken.items():
        rule, detail = details[i + 2]
        assert rule in ("out_of_range", "bad_type", "inconsistent", "unknown_carrier", "unknown_origin"), (column, rule)
        assert column in detail or rule.startswith("unknown"), (column, detail)
    conn.execute("SET TimeZone = 'UTC'")  # as the assets' connections are
    loaded = read_days(conn, "staging.flights", "flight_date", JAN5, JAN5)
    assert check_contract(StagingFlights, loaded).passed


def test_flight_minus_three_is_quarantined_and_the_day_flows(conn, small_lake):
    store, lake = small_lake
    header, lines = csv_lines(JAN5)
    lines[5] = _edit(lines[5], flight="-3")
    day = _load(conn, store, lake, lines, header).days[JAN5]
    assert (day.loaded_rows, day.quarantined_rows) == (719, 1)
    [(rule, detail, line, _)] = _quarantined(conn)
    assert (rule, line) == ("out_of_range", 7) and "flight=-3" in detail


@pytest.mark.parametrize(("length", "where"), [(10_485_760, "landing"), (11, "warehouse")])
def test_an_oversized_tail_number_never_reaches_the_fact_table(conn, small_lake, length, where):
    store, lake = small_lake
    header, lines = csv_lines(JAN5)
    lines[3] = _edit(lines[3], tailnum="N" * length)
    day = _load(conn, store, lake, lines, header).days[JAN5]
    assert (day.loaded_rows, day.quarantined_rows) == (719, 1)
    [(rule, detail, line, raw)] = _quarantined(conn)
    assert line == 5
    if where == "landing":
        assert rule == "parse_error" and "10485760 characters in tailnum" in detail
    else:
        assert rule == "out_of_range" and "tailnum has 11 characters (at most 10)" in detail
    assert len(raw) < 5_000  # what quarantine keeps of the raw values is bounded
    longest = conn.execute("SELECT max(length(tailnum)) FROM staging.flights").fetchone()[0]
    assert longest <= MAX_LENGTH["tailnum"]


def test_quarantine_keeps_the_start_and_the_length_of_a_long_value(conn, small_lake):
    store, lake = small_lake
    header, lines = csv_lines(JAN5)
    lines[0] = _edit(lines[0], dest="Z" * 500)  # under the landing's limit, over the contract's
    _load(conn, store, lake, lines, header)
    [(rule, detail, _, raw)] = _quarantined(conn)
    assert rule == "out_of_range" and "dest has 500 characters (at most 3)" in detail
    assert json.loads(raw)["dest"] == "Z" * 200 + "... (500 characters)"
