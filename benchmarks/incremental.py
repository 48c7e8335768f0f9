"""Incremental cost: one new day, from its landed file to its predictions, after growing history.

On the 1x year, in process through the platform (``PlatformHome``): the first 30 days are
built in range runs and a champion is trained on them; then, for each history length,
the next days arrive one at a time, each through ``ingest_landing`` → ``load_warehouse``
→ ``build_features`` → ``score_days`` for that day alone, and each is timed. Between the
measured points the history grows in range runs (not timed). Five consecutive days are
measured per point and the median reported; the year has 365 days, so the last point
measures days 361-365 (after 360-364 days of history).

    python -m benchmarks.incremental --inputs DIR --work DIR --result FILE
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchmarks.data import ensure_inputs
from benchmarks.measure import progress
from benchmarks.platform_run import PlatformHome
from ml_platform.defs.lake.reference import raw_reference_tables
from ml_platform.defs.warehouse.assets import dim_airports, dim_carriers, dim_planes

HISTORY_POINTS = (30, 180, 365)  # days of history before the new day (the last one capped by the year)
SAMPLES = 5  # consecutive new days measured per point (the median is reported)
STEPS = (
    ("lake", "ingest_landing"),
    ("warehouse", "load_warehouse"),
    ("features", "build_features"),
    ("predictions", "score_days"),
)


def run(inputs_root: Path, work: Path) -> dict:
    inputs = ensure_inputs(inputs_root, 1, progress)
    days = list(inputs.days)
    built = 0  # days[:built] are in the lake, warehouse and features

    with PlatformHome(work / "home", inputs) as platform:

        def grow_to(n: int) -> None:
            nonlocal built
            if n <= built:
                return
            first, last = days[built], days[n - 1]
            progress(f"incremental: building history {first}..{last} in range runs (not timed)")
            platform.land(days[built:n])
            for _, job in STEPS[:3]:
                platform.run_job(job, first, last)
            built = n

        platform.materialize(raw_reference_tables, "reference tables to the lake")
        platform.materialize([dim_carriers, dim_airports, dim_planes], "dimensions")
        grow_to(HISTORY_POINTS[0])
        progress("incremental: training the champion on the first 30 days (not timed)")
        platform.train()

        points = []
        for history in HISTORY_POINTS:
            start = min(history, len(days) - SAMPLES)
            grow_to(start)
            samples = []
            for day in days[start : start + SAMPLES]:
                steps, started = {}, time.perf_counter()
                platform.land([day])
                for step, job in STEPS:
                    t = time.perf_counter()
                    platform.run_job(job, day)
                    steps[step] = time.perf_counter() - t
                total = time.perf_counter() - started
                samples.append({"day": str(day), "history_days": built, "seconds": total, "steps": steps})
                built += 1
                detail = ", ".join(f"{k} {v:.1f}" for k, v in steps.items())
                progress(f"incremental: {day} after {built - 1} days of history: {total:.1f}s ({detail})")
            points.append(
                {
                    "history": history,
                    "median_seconds": statistics.median(s["seconds"] for s in samples),
                    "samples": samples,
                }
            )
        predicted = platform.count("SELECT count(DISTINCT flight_date) FROM ml.predictions")
    first, last = points[0]["median_seconds"], points[-1]["median_seconds"]
    return {
        "points": points,
        "ratio_last_first": last / first,
        "days_with_predictions": predicted,
        "failed_checks": platform.failed_checks,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.incremental", description=__doc__)
    parser.add_argument("--inputs", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    args.result.write_text(json.dumps(run(args.inputs, args.work), indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
