"""One store contract, a local folder and an S3 prefix (a real moto server) alike.

* Paths are relative and '/'-separated; listing is recursive or top-level only,
  sorted, and never shows what lies outside the store's root or prefix.
* A file's version changes if and only if its content changes (locally it is the
  content's sha256); ``move`` leaves the file under exactly its new name.
* A path that climbs out of the store (``../x``) is refused.
* Writes are atomic: a local write that fails before its rename leaves the old
  content and no temporary file; ``lake.write_partition`` replaces a day's
  partition whole, removes stale files, and a failed write changes nothing.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path

import boto3
import polars as pl
import pytest

from ml_platform.devdata.reference_data import flights_csv_for_day
from ml_platform.io import store as storage
from ml_platform.io.store import open_store
from ml_platform.pipeline import lake

FILES = {"a.csv": b"a\n", "dir/b.csv": b"b,b\n", "dir/sub/c.csv": b"", "z.bin": bytes(range(256))}


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    bucket = request.getfixturevalue("s3_env")
    return open_store(f"s3://{bucket}/some/prefix")


@pytest.fixture
def filled(store):
    for path, data in FILES.items():
        store.write_bytes(path, data)
    return store


def test_written_bytes_read_back_exactly(filled):
    for path, data in FILES.items():
        assert filled.exists(path)
        assert filled.read_bytes(path) == data
    assert not filled.exists("missing.csv")
    assert not filled.exists("dir")  # a folder is not a file


@pytest.mark.parametrize(
    ("prefix", "recursive", "paths"),
    [
        ("", True, ["a.csv", "dir/b.csv", "dir/sub/c.csv", "z.bin"]),
        ("", False, ["a.csv", "z.bin"]),
        ("dir", True, ["dir/b.csv", "dir/sub/c.csv"]),
        ("dir/", True, ["dir/b.csv", "dir/sub/c.csv"]),
        ("dir", False, ["dir/b.csv"]),
        ("dir/sub", False, ["dir/sub/c.csv"]),
        ("di", True, []),  # a prefix is a folder, not the start of a name
        ("nowhere", True, []),
    ],
)
def test_list(filled, prefix, recursive, paths):
    listed = filled.list(prefix, recursive=recursive)
    assert [f.path for f in listed] == paths
    assert [f.size for f in listed] == [len(FILES[p]) for p in paths]
    assert [f.name for f in listed] == [p.rsplit("/", 1)[-1] for p in paths]


def test_version_changes_when_content_changes_and_stays_while_untouched(store):
    def version():
        [f] = store.list("v")
        return f.version

    store.write_bytes("v/file.csv", b"one\n")
    first = version()
    assert version() == first  # listing again reads nothing new
    store.write_bytes("v/file.csv", b"two\n")
    assert version() != first


def test_listing_a_local_store_reads_no_file(tmp_path, monkeypatch):
    """The landing sensor lists the zone every tick: a listing is a stat per file, never a read."""
    store = open_store(str(tmp_path))
    store.write_bytes("x.csv", b"2013,1,1\n")
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self} was read"))
    assert [(f.path, f.size) for f in store.list()] == [("x.csv", 9)]


def test_delete(filled):
    filled.delete("dir/b.csv")
    filled.delete("never-there.csv")  # deleting a missing file is not an error
    assert not filled.exists("dir/b.csv")
    assert [f.path for f in filled.list()] == ["a.csv", "dir/sub/c.csv", "z.bin"]


def test_move(filled):
    storage.move(filled, "z.bin", "_rejected/z.bin")
    assert not filled.exists("z.bin")
    assert filled.read_bytes("_rejected/z.bin") == FILES["z.bin"]
    assert [f.path for f in filled.list()] == ["_rejected/z.bin", "a.csv", "dir/b.csv", "dir/sub/c.csv"]


def test_move_onto_itself_keeps_the_file(filled):
    storage.move(filled, "a.csv", "a.csv")
    assert filled.read_bytes("a.csv") == FILES["a.csv"]


@pytest.mark.parametrize("path", ["../x.csv", "a/../../x.csv", "dir/../../../x.csv"])
def test_a_path_leaving_the_store_is_refused(store, tmp_path, path):
    for operation in ("write_bytes", "read_bytes", "exists", "delete", "list"):
        args = (path, b"escaped") if operation == "write_bytes" else (path,)
        with pytest.raises(ValueError, match="leaves the store"):
            getattr(store, operation)(*args)
    assert not (tmp_path / "x.csv").exists()


def test_s3_keys_live_under_the_prefix_and_nothing_outside_is_listed(s3_env):
    client = boto3.client("s3")
    for key in ("some/prefix-other/x.csv", "some/x.csv", "top.csv"):
        client.put_object(Bucket=s3_env, Key=key, Body=b"outside")
    store = open_store(f"s3://{s3_env}/some/prefix/")
    store.write_bytes("dir/b.csv", b"b")

    assert client.get_object(Bucket=s3_env, Key="some/prefix/dir/b.csv")["Body"].read() == b"b"
    assert store.uri("dir/b.csv") == f"s3://{s3_env}/some/prefix/dir/b.csv"
    assert [f.path for f in store.list()] == ["dir/b.csv"]
    assert [f.path for f in store.list("", recursive=False)] == []


# --- atomicity --------------------------------------------------------------------------------


def test_a_local_write_failing_before_its_rename_keeps_the_old_content(tmp_path, monkeypatch):
    store = open_store(str(tmp_path))
    store.write_bytes("day/flights.csv", b"old\n")

    def crash(src, dst):
        raise OSError("disk vanished mid-write")

    monkeypatch.setattr(storage.os, "replace", crash)
    for path in ("day/flights.csv", "day/new.csv"):
        with pytest.raises(OSError, match="disk vanished"):
            store.write_bytes(path, b"new\n")

    assert store.read_bytes("day/flights.csv") == b"old\n"
    assert os.listdir(tmp_path / "day") == ["flights.csv"]  # no temp file, no half-written new.csv


def test_list_hides_a_temporary_file_of_a_write_in_progress(tmp_path):
    store = open_store(str(tmp_path))
    (tmp_path / f"{storage.TMP_PREFIX}0123-flights.csv").write_bytes(b"half")
    assert store.list() == []


DAY = dt.date(2013, 1, 1)
FOLDER = "raw/flights/date=2013-01-01"


@pytest.fixture(scope="module")
def flights() -> pl.DataFrame:
    return pl.read_csv(io.BytesIO(flights_csv_for_day(DAY)), null_values="NA")


def test_write_partition_replaces_the_day_and_removes_stale_files(store, flights):
    lake.write_partition(store, "flights", DAY, flights)
    store.write_bytes(f"{FOLDER}/part-1.parquet", b"stale")
    store.write_bytes(f"{FOLDER}/sub/old.csv", b"stale")
    lake.write_partition(store, "flights", DAY + dt.timedelta(days=1), flights.head(3))

    path = lake.write_partition(store, "flights", DAY, flights.head(10))

    assert path == f"{FOLDER}/part-0.parquet"
    assert [f.path for f in store.list(FOLDER)] == [path]
    assert lake.read_partition(store, "flights", DAY).equals(flights.head(10))
    assert lake.read_partition(store, "flights", DAY + dt.timedelta(days=1)).equals(flights.head(3))


def test_a_failed_partition_write_leaves_the_previous_partition(store, flights, monkeypatch):
    lake.write_partition(store, "flights", DAY, flights)
    before = store.list(FOLDER)

    def crash(frame):
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(lake, "parquet_bytes", crash)
    with pytest.raises(RuntimeError, match="encoder crashed"):
        lake.write_partition(store, "flights", DAY, flights.head(10))

    assert store.list(FOLDER) == before
    partition = lake.read_partition(store, "flights", DAY)
    assert partition.height == 842
    assert partition.equals(flights)
