"""The benchmark's independent anchor (``benchmarks/anchor.py``, contender (e) of `make bench`) computes the
platform's features, column for column, on twelve real days (the 2013-02-08/09 blizzard included), without
the platform's SQL: if the features change, this says the anchor must follow. The report shows how far the
platform and its bare script are above it."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

from benchmarks import anchor, report
from benchmarks.checksum import compare, features_checksum
from benchmarks.contender import NAMES
from benchmarks.verify_pandas_baseline import reference_features, write_inputs
from ml_platform.domain.features import COLUMN_ORDER, COLUMNS

FIRST, LAST = dt.date(2013, 2, 1), dt.date(2013, 2, 12)


def test_the_anchor_equals_the_platform_on_every_column(tmp_path):
    landing, reference, weather = write_inputs(tmp_path, FIRST, LAST)
    platform, _ = reference_features(tmp_path, FIRST, LAST, 60)
    features, seconds = anchor.build_features(landing, reference, weather, FIRST, LAST, 60, progress=lambda *_: None)
    expected, got = features_checksum(platform), features_checksum(features)
    assert expected["rows"] == got["rows"] == 10_348
    assert compare(expected, got) == []
    assert features.columns == list(COLUMN_ORDER)
    assert features.schema == platform.schema  # the same DuckDB types, hence the same polars dtypes
    assert set(seconds) == {"lake", "warehouse", "features"}
    blizzard = features.filter(features["flight_date"] == dt.date(2013, 2, 8))  # docs/features.md
    assert (blizzard.height, blizzard["is_cancelled"].sum(), blizzard["origin_cancelled_2h"].max()) == (930, 472, 59)


def test_the_anchor_reads_nothing_of_the_platform_but_the_column_names():
    tree = ast.parse(Path(anchor.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert {m for m in imported if m.startswith("ml_platform")} == {"ml_platform.domain.features"}
    sql = anchor.features_sql(FIRST, LAST, 60)
    assert all(f"AS {column}," in sql or f"AS {column}\n" in sql for column in COLUMNS)


def test_the_report_shows_the_anchor_as_the_lower_bound():
    def result(which: str, seconds: tuple[float, float, float], sha: str = "x") -> dict:
        stages = [{"stage": s, "seconds": t} for s, t in zip(("lake", "warehouse", "features"), seconds, strict=True)]
        checksum = {"rows": 1, "sha256": sha, "columns": {"c": sha}}
        return {
            "name": NAMES[which],
            "flights": 336_776,
            "stages": stages,
            "checksum": checksum,
            "peak_rss_bytes": 2**30,
        }

    run = {"a": result("a", (8, 8, 8)), "b": result("b", (4, 4, 4)), "e": result("e", (1, 2, 1))}
    summary = {
        "date": "2026-12-03",
        "machine": {"cpus": 2, "memory_gb": 23.5, "load_at_start": [1], "load_at_end": [1], "versions": {}},
        "options": {"scales": [1], "contenders": ["a", "b", "e"], "duckdb_memory_limit": "1GB", "train_up_to": 1},
        "wall_seconds": 60,
        "scales": {"1": run},
    }
    summary = report.summarize(summary)
    assert run["ratios"]["a/e"]["data"] == 6.0 and run["ratios"]["b/e"]["features"] == 4.0
    assert summary["failures"] == []
    text = report.markdown(summary)
    assert "(a)/(e) data stages: **6.00x**" in text and "| (e) independent DuckDB anchor | 1.0 s | 2.0 s |" in text
    run["e"]["checksum"] = {"rows": 1, "sha256": "y", "columns": {"c": "y"}}
    assert any("(e) and (b) features differ" in f for f in report.summarize(summary)["failures"])
