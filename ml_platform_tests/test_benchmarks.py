"""The benchmark's pandas baseline computes the platform's features, column for column, on
real days (the 2013-02-08/09 blizzard included): if the features change, this says the
baseline must follow before `make bench` can compare them. The report compares a run with an
earlier one."""

from __future__ import annotations

import datetime as dt
import json
import os

from benchmarks.checksum import compare, features_checksum
from benchmarks.pandas_baseline import build_features
from benchmarks.verify_pandas_baseline import reference_features, write_inputs

FIRST, LAST = dt.date(2013, 2, 1), dt.date(2013, 2, 12)


def test_the_pandas_baseline_equals_the_platform_on_every_column(tmp_path):
    landing, reference, weather = write_inputs(tmp_path, FIRST, LAST)
    platform, _ = reference_features(tmp_path, FIRST, LAST, 60)
    baseline, seconds = build_features(landing, reference, weather, FIRST, LAST, 60, progress=lambda *_: None)
    expected, got = features_checksum(platform), features_checksum(baseline)
    assert expected["rows"] == got["rows"] == 10_348
    assert compare(expected, got) == []
    assert set(seconds) == {"lake", "warehouse", "features"}


def test_the_report_compares_with_an_earlier_run():
    from pathlib import Path

    from benchmarks import report

    earlier = Path(__file__).parents[1] / "benchmarks" / "results" / "2026-11-30.json"
    summary = json.loads(earlier.read_text())
    summary["before"] = report.before(earlier)
    text = report.markdown(summary)
    assert "| x1 full year incl. training, (a) | 69.05 s | 69.05 s | 90.0 s |" in text
    assert "| features | 32.0 s | 32.0 s |" in text  # (a) at x10


def test_the_platform_contender_counts_its_dagster_events_and_runs_its_data_stages_without_mlflow(tmp_path):
    import psutil

    from benchmarks import platform_run
    from benchmarks.data import ensure_inputs
    from benchmarks.measure import Stopwatch

    inputs = ensure_inputs(tmp_path / "inputs", 1, progress=lambda _: None)
    watch = Stopwatch("x1 (a) three days")
    before = {p.pid for p in psutil.Process().children(recursive=True)}  # other tests' servers
    started = []
    sample = watch.stage  # an MLflow server would be a new child of this process while a stage runs

    def stage(name, rows=None):
        started.extend(p.name() for p in psutil.Process().children(recursive=True) if p.pid not in before)
        return sample(name, rows)

    watch.stage = stage
    environ = dict(os.environ)  # the contender sets the platform's settings in its (own) process
    try:
        _, facts = platform_run.run(
            inputs, tmp_path / "work", watch, train=False, first=dt.date(2013, 1, 1), last=dt.date(2013, 1, 3)
        )
    finally:
        os.environ.clear()
        os.environ.update(environ)
    events = facts["dagster_events"]
    assert list(events) == ["lake", "warehouse", "features"] and facts["failed_checks"] == []
    # A planned and a materialization event per asset and day, on top of each run's own events:
    # 2 lake assets, 5 warehouse tables (staging, quarantine, fact), 1 feature table, 3 days.
    assert events["lake"] > 2 * 2 * 3 and events["warehouse"] > 2 * 5 * 3 and events["features"] > 2 * 3
    assert not [name for name in started if "mlflow" in name or "uvicorn" in name]
