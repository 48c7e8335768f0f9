"""Bad input, as deliveries really go wrong: 24 kinds, each made from a real day's file.

Every kind lands in one landing zone beside good days; the landing sensor and the runs it asks
for (as the daemon runs them) and the warehouse load then do their work. For each kind the file is
either ingested, with every line loaded or quarantined with its rule, or rejected with a reason a
person reads next to it in ``_rejected/``. Nothing is ignored without a trace, and the good days
flow whatever the bad ones do.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import os
import re
import time
import zipfile

import dagster as dg
import pytest

from ml_platform.defs.lake.landing_sensor import landing_sensor
from ml_platform.defs.lake.reference import raw_reference_tables
from ml_platform.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from ml_platform.defs.resources import LandingZoneResource
from ml_platform.defs.warehouse.assets import dim_airports, dim_carriers, dim_planes
from ml_platform.devdata.reference_data import flights_csv_for_day
from ml_platform.io.store import open_store
from ml_platform.ops.bootstrap import seed
from ml_platform_tests.helpers import platform_defs, run_days

pytestmark = pytest.mark.slow
MARCH = [dt.date(2013, 3, d) for d in range(1, 32)]
COLUMNS = flights_csv_for_day(MARCH[0]).split(b"\n", 1)[0].decode().split(",")


def real(day: dt.date) -> bytes:
    return flights_csv_for_day(day)


def lines(day: dt.date) -> list[bytes]:
    return real(day).rstrip(b"\n").split(b"\n")


def with_line(day: dt.date, index: int, change) -> bytes:
    rows = lines(day)
    rows[index] = change(rows[index])
    return b"\n".join(rows) + b"\n"


def field(row: bytes, column: str, value: bytes) -> bytes:
    parts = row.split(b",")
    parts[COLUMNS.index(column)] = value
    return b",".join(parts)


def zipped(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("flights.csv", data)
    return out.getvalue()


def reordered(day: dt.date) -> bytes:
    rows = [r.split(b",") for r in lines(day)]
    order = list(reversed(range(len(COLUMNS))))
    out = [b",".join([r[i] for i in order] + [b"extra" if n == 0 else b"x"]) for n, r in enumerate(rows)]
    return b"\n".join(out) + b"\n"


# name, bytes, and what must happen: ("ingested", quarantined rows) or ("rejected", words of the reason)
D = MARCH
KINDS = {
    "gzip": (f"flights_{D[0]}.csv.gz", gzip.compress(real(D[0])), ("ingested", 0)),
    "corrupt gzip": (f"flights_{D[1]}.csv.gz", gzip.compress(real(D[1]))[:500], ("rejected", "not a valid gzip")),
    "zip": (f"flights_{D[2]}.csv", zipped(real(D[2])), ("rejected", "ZIP archive")),
    "stray quote": (f"flights_{D[3]}.csv", with_line(D[3], 11, lambda r: field(r, "tailnum", b'"N1')), ("ingested", 1)),
    "missing column": (
        f"flights_{D[4]}.csv",
        b"\n".join(b",".join(r.split(b",")[:8]) for r in lines(D[4])) + b"\n",
        ("rejected", "required column(s) missing"),
    ),
    "extra and reordered columns": (f"flights_{D[5]}.csv", reordered(D[5]), ("ingested", 0)),
    "empty": (f"flights_{D[6]}.csv", b"", ("rejected", "file is empty")),
    "header only": (f"flights_{D[7]}.csv", lines(D[7])[0] + b"\n", ("rejected", "header but no rows")),
    "latin-1": (
        f"flights_{D[8]}.csv",
        with_line(D[8], 5, lambda r: field(r, "tailnum", "N\xe9".encode("latin-1"))),
        ("rejected", "not UTF-8"),
    ),
    "BOM and CRLF": (f"flights_{D[9]}.csv", b"\xef\xbb\xbf" + real(D[9]).replace(b"\n", b"\r\n"), ("ingested", 0)),
    "wrong type": (f"flights_{D[10]}.csv", with_line(D[10], 3, lambda r: field(r, "flight", b"abc")), ("ingested", 1)),
    "absurd value": (
        f"flights_{D[11]}.csv",
        with_line(D[11], 4, lambda r: field(r, "dep_delay", b"99999")),
        ("ingested", 1),
    ),
    "duplicate rows": (f"flights_{D[12]}.csv", real(D[12]) + lines(D[12])[1] + b"\n", ("ingested", 1)),
    "10 MB line": (
        f"flights_{D[13]}.csv",
        with_line(D[13], 6, lambda r: field(r, "tailnum", b"N" * 10_485_760)),
        ("ingested", 1),
    ),
    "NUL bytes": (
        f"flights_{D[14]}.csv",
        real(D[14])[:300] + b"\x00\x00" + real(D[14])[300:],
        ("rejected", "NUL bytes"),
    ),
    "a date outside the data": ("flights_2012-12-31.csv", real(D[15]), ("rejected", "not a partition")),
    "not a calendar date": ("flights_2013-02-30.csv", real(D[15]), ("rejected", "not a calendar date")),
    "odd name": (f"flights {D[16]} (1).csv", real(D[16]), ("rejected", "name is not of the form")),
    "path traversal": (f"..flights_{D[16]}.csv", real(D[16]), ("rejected", "hidden or reserved name")),
    "name ending in a newline": (f"flights_{D[16]}.csv\n", real(D[16]), ("rejected", "name is not of the form")),
    "hidden file": (".DS_Store", b"\x00\x01", ("rejected", "hidden or reserved name")),
    "not a flights file": ("weather.csv", b"origin,temp\nJFK,3\n", ("rejected", "name is not of the form")),
}
GOOD = [D[20], D[21]]  # plain real days beside the bad ones


def _run(instance, request: dg.RunRequest):
    tags = request.tags or {}
    if request.partition_key:
        return run_days(instance, "ingest_landing", request.partition_key)
    return run_days(instance, "ingest_landing", tags[RANGE_START_TAG], tags[RANGE_END_TAG])


def test_every_kind_is_ingested_or_rejected_with_its_reason_and_nothing_is_lost(settings, tmp_path):
    seed(settings)
    landing = open_store(settings.landing_url)
    for name, data, _ in KINDS.values():
        (tmp_path / "home" / "landing" / name).write_bytes(data)
    for day in GOOD:
        landing.write_bytes(f"flights_{day}.csv", real(day))
    outside = tmp_path / "secret.txt"
    outside.write_text("not for the platform\n")
    os.symlink(outside, tmp_path / "home" / "landing" / f"flights_{D[17]}.csv")  # a link out of the zone
    partial = tmp_path / "home" / "landing" / f"flights_{D[18]}.csv"
    partial.write_bytes(real(D[18])[:2000])  # still being written

    past = time.time() - 60
    for path in (tmp_path / "home" / "landing").iterdir():
        if path != partial and not path.is_symlink() and path.is_file():
            os.utime(path, (past, past))  # delivered a minute ago
    resource = LandingZoneResource(url=settings.landing_url, settle_seconds=2)
    with dg.instance_for_test() as instance:

        def tick(cursor):
            context = dg.build_sensor_context(cursor=cursor, instance=instance, resources={"landing": resource})
            result = landing_sensor(context)
            return result.cursor, list(result.run_requests or [])

        cursor, requests = tick(None)
        assert not any(f"flights_{D[18]}" in (r.tags or {}).get("ml_platform/landing_files", "") for r in requests)
        partial.write_bytes(real(D[18]))  # the upload completes
        os.utime(partial, (past, past))
        cursor, more = tick(cursor)
        assert [r.partition_key for r in more] == [str(D[18])]
        cursor, nothing = tick(cursor)
        assert nothing == []  # every file had its outcome, once
        requests += more

        runs = [_run(instance, r) for r in requests]
        # Contiguous good days share a run (03-10..03-14 is one); a day with a bad file has its own.
        ranges = {(r.tags.get(RANGE_START_TAG), r.tags.get(RANGE_END_TAG)) for r in requests if not r.partition_key}
        assert (str(D[9]), str(D[13])) in ranges and len(runs) == 13
        resources = platform_defs().resources
        assert dg.materialize(
            [*raw_reference_tables, dim_carriers, dim_airports, dim_planes], instance=instance, resources=resources
        ).success
        assert run_days(instance, "load_warehouse", str(D[0]), str(D[21])).success

        rejected = {f.name for f in landing.list("_rejected")}
        staged = instance.get_latest_materialization_event(dg.AssetKey(["warehouse", "staging_flights"]))
        assert staged is not None
        for kind, (name, _, (outcome, expected)) in KINDS.items():
            day = next((d for d in MARCH if str(d) in name), None)
            if outcome == "rejected":
                base = re.sub(r"[\x00-\x1f\x7f]", "_", name).lstrip(".")
                [reason_file] = [
                    r for r in rejected if re.fullmatch(re.escape(base) + r"(\.[0-9a-f]{12})?\.error\.txt", r)
                ]
                reason = landing.read_bytes(f"_rejected/{reason_file}").decode()
                assert expected in reason, (kind, reason)
                assert not landing.exists(name), kind  # set aside, not left behind
            else:
                counts = _day_counts(instance, day)
                assert counts["input_rows"] == counts["loaded_rows"] + counts["quarantined_rows"], kind
                assert counts["quarantined_rows"] == expected, (kind, counts)
                assert counts["input_rows"] == len(lines(day)) - 1 + (kind == "duplicate rows"), (kind, counts)
        for day in (*GOOD, D[18]):  # the good days and the completed upload flowed
            counts = _day_counts(instance, day)
            assert counts["loaded_rows"] == len(lines(day)) - 1 and counts["quarantined_rows"] == 0, day
        link_reason = [r for r in rejected if r.startswith(f"flights_{D[17]}")]
        assert link_reason and outside.read_text() == "not for the platform\n"  # the target is untouched


def _day_counts(instance, day: dt.date) -> dict:
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(["warehouse", "staging_flights"]), asset_partitions=[str(day)]),
        limit=1,
    ).records[0]
    meta = record.asset_materialization.metadata
    return {k: meta[k].value for k in ("input_rows", "loaded_rows", "quarantined_rows")}
