"""The benchmark's results: ratios, targets met or missed, and the JSON + markdown files.

summary = summarize(results)           # adds "ratios" per scale, "targets" and "failures"
summary["before"] = before(earlier)    # optional: an earlier results file to compare with
write(summary, out_dir)                # <out>/<date>.json and <out>/<date>.md, atomically
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from benchmarks.contender import DATA_STAGES
from benchmarks.measure import gib

GB = 2**30
TARGET_SCALE = 10


# ---------------------------------------------------------------- numbers


def stage_seconds(result: dict | None) -> dict[str, float]:
    if not result or "stages" not in result:
        return {}
    return {s["stage"]: s["seconds"] for s in result["stages"]}


def data_seconds(result: dict | None) -> float | None:
    """Lake + warehouse + features, the stages every contender does."""
    stages = stage_seconds(result)
    return sum(stages[s] for s in DATA_STAGES) if all(s in stages for s in DATA_STAGES) else None


def total_seconds(result: dict | None) -> float | None:
    stages = stage_seconds(result)
    return sum(stages.values()) if stages else None


def _ratio(x: float | None, y: float | None) -> float | None:
    return x / y if x is not None and y else None


def ratios(run: dict) -> dict:
    """(a)/(b), (c)/(b) and (d)/(b) per data stage and for the data stages together, measured in the same run."""
    base = stage_seconds(run.get("b"))
    out = {}
    for which in ("a", "c", "d"):
        mine = stage_seconds(run.get(which))
        per_stage = {s: _ratio(mine.get(s), base.get(s)) for s in DATA_STAGES}
        out[f"{which}/b"] = {**per_stage, "data": _ratio(data_seconds(run.get(which)), data_seconds(run.get("b")))}
    # (e) the independent anchor is the lower bound: (a)/(e) and (b)/(e), how far each is above it
    anchor = stage_seconds(run.get("e"))
    for which in ("a", "b"):
        mine = stage_seconds(run.get(which))
        per_stage = {s: _ratio(mine.get(s), anchor.get(s)) for s in DATA_STAGES}
        out[f"{which}/e"] = {**per_stage, "data": _ratio(data_seconds(run.get(which)), data_seconds(run.get("e")))}
    return out


def checksum_problems(scale: int, run: dict) -> list[str]:
    """(b) against (a), (c) against (b): same rows and checksum, else a message naming the columns."""
    from benchmarks.checksum import compare

    problems = []
    anchor_base = "b" if run.get("b", {}).get("checksum") else "a"  # (e) against (b), else (a)
    for left, right in (("a", "b"), ("c", "b"), ("d", "b"), ("e", anchor_base)):
        x, y = run.get(left, {}).get("checksum"), run.get(right, {}).get("checksum")
        if x and y:
            differ = compare(x, y)
            if differ:
                more = " ..." if len(differ) > 12 else ""
                problems.append(
                    f"x{scale}: ({left}) and ({right}) features differ: {x['rows']:,} vs {y['rows']:,} "
                    f"rows; columns {', '.join(differ[:12])}{more}"
                )
    return problems


def _target(
    name: str, measured: float | None, limit: float, unit: str, *, below: bool = True, note: str | None = None
) -> dict:
    """One target: met or missed, and by how much (``distance`` > 0 is the margin, < 0 the shortfall)."""
    if measured is None:
        return {
            "target": name,
            "measured": None,
            "limit": limit,
            "unit": unit,
            "met": None,
            "distance": None,
            "note": note or "not measured in this run",
        }
    met = measured <= limit if below else measured > limit
    distance = (limit - measured) if below else (measured - limit)
    return {
        "target": name,
        "measured": measured,
        "limit": limit,
        "unit": unit,
        "met": met,
        "distance": distance,
        "note": note,
    }


def targets(summary: dict) -> list[dict]:
    ten = summary["scales"].get(str(TARGET_SCALE), {})
    one = summary["scales"].get("1", {})
    a10, c10, a1 = ten.get("a"), ten.get("c"), one.get("a")
    concurrency = summary.get("concurrency") or {}
    concurrency_note = concurrency.get("skipped") or concurrency.get("error")
    a1_total = total_seconds(a1) if a1 and "training" in stage_seconds(a1) else None
    incremental = summary.get("incremental") or {}
    sensor = summary.get("sensor") or {}
    sensor_note = sensor.get("note") or sensor.get("skipped") or sensor.get("error")
    c_over_a = _ratio(data_seconds(c10), data_seconds(a10))
    online = summary.get("online") or {}
    online_note = online.get("skipped") or online.get("error")
    stream, serving = online.get("stream") or {}, online.get("serving") or {}
    served_1, mlflow_1 = serving.get("service_1") or {}, (serving.get("mlflow_models_serve") or {}).get("1") or {}
    return [
        _target("x10 data stages: (a) within 2x of (b)", ten.get("ratios", {}).get("a/b", {}).get("data"), 2.0, "x"),
        _target(
            "x10 data stages: (a) faster than (c) [(c)/(a) > 1]",
            c_over_a,
            1.0,
            "x",
            below=False,
            note=(c10 or {}).get("skipped") or (c10 or {}).get("error"),
        ),
        _target(
            "incremental day: 365/30 days of history",
            incremental.get("ratio_last_first"),
            1.3,
            "x",
            note=incremental.get("skipped") or incremental.get("error"),
        ),
        _target(
            "x10 peak memory of (a)",
            (a10 or {}).get("peak_rss_bytes") and a10["peak_rss_bytes"] / GB,
            2.0,
            "GB",
            note=summary["options"].get("duckdb_memory_limit")
            and f"DuckDB memory_limit {summary['options']['duckdb_memory_limit']}",
        ),
        _target("x1 full year incl. training, (a)", a1_total, 90.0, "s"),
        *(
            _target(
                f"x{scale} data stages: DuckLake within 1.2x of the DuckDB file [(d)/(b)]",
                summary["scales"].get(str(scale), {}).get("ratios", {}).get("d/b", {}).get("data"),
                1.2,
                "x",
                note=(summary["scales"].get(str(scale), {}).get("d") or {}).get("error"),
            )
            for scale in (1, TARGET_SCALE)
        ),
        _target(
            "backfill of 30 days, 1/2/4 runs at once: lock errors",
            concurrency.get("lock_errors"),
            0,
            "errors",
            note=concurrency_note,
        ),
        _target(
            f"sensor latency (file landed -> {sensor.get('measured_to') or 'predictions'})",
            sensor.get("latency_seconds"),
            60.0,
            "s",
            note=sensor_note,
        ),
        _target(
            "stream: produce-to-lake latency p95",
            stream.get("p95_seconds"),
            5.0,
            "s",
            note=online_note or stream.get("failed"),
        ),
        _target(
            "prediction service: p99 for one flight, Redis read included",
            served_1.get("p99_ms"),
            20.0,
            "ms",
            note=online_note or serving.get("failed"),
        ),
        _target(
            "prediction service ahead of `mlflow models serve` [p50 ratio mlflow/service > 1]",
            _ratio(mlflow_1.get("p50_ms"), served_1.get("p50_ms")),
            1.0,
            "x",
            below=False,
            note=online_note or (serving.get("mlflow_models_serve") or {}).get("skipped"),
        ),
    ]


def summarize(summary: dict) -> dict:
    """Add ratios, checksum comparisons, targets and the list of failures to the raw results."""
    failures = []
    for scale, run in summary["scales"].items():
        run["ratios"] = ratios(run)
        failures += checksum_problems(int(scale), run)
        for which in ("a", "b", "c", "d", "e"):
            if which in run and "error" in run[which]:
                failures.append(f"x{scale} ({which}) {run[which]['name']}: {run[which]['error']}")
    for part in ("incremental", "sensor", "concurrency", "online"):
        if (summary.get(part) or {}).get("error"):
            failures.append(f"{part}: {summary[part]['error']}")
    for part in ("stream", "serving"):
        if ((summary.get("online") or {}).get(part) or {}).get("failed"):
            failures.append(f"online {part}: {summary['online'][part]['failed']}")
    concurrency = summary.get("concurrency") or {}
    if concurrency.get("failed_runs"):
        failures.append(f"concurrency: {concurrency['failed_runs']} runs failed")
    if concurrency.get("same_rows_at_every_level") is False:
        failures.append("concurrency: the levels' warehouse tables hold different rows")
    summary["targets"] = targets(summary)
    summary["failures"] = failures
    return summary


def before(path: Path) -> dict:
    """What an earlier results file measured: its targets and the platform's (a) stage seconds per scale."""
    earlier = json.loads(path.read_text())
    return {
        "file": path.name,
        "started_at": earlier.get("started_at"),
        "targets": {t["target"]: t["measured"] for t in earlier.get("targets", [])},
        "a_stages": {scale: stage_seconds(run.get("a")) for scale, run in earlier.get("scales", {}).items()},
        "a_peak_gb": {
            scale: (run.get("a") or {}).get("peak_rss_bytes", 0) / GB
            for scale, run in earlier.get("scales", {}).items()
        },
    }


def _before_after(summary: dict) -> list[str]:
    was = summary["before"]
    lines = [
        f"## Before and after (against `{was['file']}`, started {was['started_at']})",
        "",
        "| target | before | now | limit |",
        "|---|---:|---:|---:|",
    ]
    for t in summary["targets"]:
        old = was["targets"].get(t["target"])
        cells = ["-" if x is None else f"{x:,.2f} {t['unit']}" for x in (old, t["measured"])]
        lines.append(f"| {t['target']} | {cells[0]} | {cells[1]} | {t['limit']} {t['unit']} |")
    for scale, run in summary["scales"].items():
        old, now = was["a_stages"].get(scale, {}), stage_seconds(run.get("a"))
        if not old or not now:
            continue
        lines += ["", f"(a) the platform at x{scale}:", "", "| stage | before | now |", "|---|---:|---:|"]
        for stage in now:
            lines.append(f"| {stage} | {_s(old.get(stage))} | {_s(now[stage])} |")
        peak_now = (run.get("a") or {}).get("peak_rss_bytes")
        lines.append(f"| peak memory | {was['a_peak_gb'].get(scale, 0):.2f} GB | {gib(peak_now)} |")
    return lines + [""]


# ---------------------------------------------------------------- markdown


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f} s"


def _x(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _scale_table(scale: str, run: dict) -> list[str]:
    stages = ("lake", "warehouse", "features", "training", "predictions")
    lines = [
        f"### x{scale} ({int(scale) * 336_776:,} flights)",
        "",
        "| contender | " + " | ".join(stages) + " | data (lake→features) | total | data rows/s | peak memory |",
        "|---|" + "---:|" * (len(stages) + 4),
    ]
    for which in ("a", "b", "c", "d", "e"):
        result = run.get(which)
        if not result:
            continue
        name = f"({which}) {result['name']}"
        if "skipped" in result or "error" in result:
            why = result.get("skipped") or result.get("error")
            state = "skipped" if "skipped" in result else "FAILED"
            lines.append(f"| {name} | {state}: {why} |" + " |" * (len(stages) + 3))
            continue
        seconds = stage_seconds(result)
        data = data_seconds(result)
        rate = f"{result['flights'] / data:,.0f}" if data else "-"
        cells = [_s(seconds.get(s)) if s in seconds else "-" for s in stages]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {_s(data)} | {_s(total_seconds(result))} | {rate} | "
            f"{gib(result.get('peak_rss_bytes'))} |"
        )
    r = run.get("ratios", {})
    for pair in ("a/b", "c/b", "d/b", "a/e", "b/e"):
        if r.get(pair, {}).get("data") is not None:
            per = ", ".join(f"{s} {_x(r[pair][s])}" for s in DATA_STAGES)
            lines.append(f"\n({pair.replace('/', ')/(')}) data stages: **{_x(r[pair]['data'])}** ({per})")
    events = (run.get("a") or {}).get("dagster_events")
    if events:
        per = ", ".join(f"{stage} {n:,}" for stage, n in events.items())
        lines.append(
            f"\n(a) wrote {sum(events.values()):,} events to the Dagster instance ({per}): a planned and a "
            "materialization event per asset and day, a step's days written in one transaction; their "
            "count does not grow with the scale."
        )
    lines += ["", "| contender | stage | seconds | rows/s | peak memory (process tree) |", "|---|---|---:|---:|---:|"]
    for which in ("a", "b", "c", "d", "e"):
        for s in (run.get(which) or {}).get("stages", []):
            rate = f"{s['rows_per_second']:,.0f}" if s.get("rows_per_second") else "-"
            lines.append(f"| ({which}) | {s['stage']} | {s['seconds']:.1f} | {rate} | {gib(s.get('peak_rss_bytes'))} |")
    if run.get("c", {}).get("peak_rss_bytes") and "stages" in run["c"]:
        peak = gib(run["c"]["peak_rss_bytes"])
        lines.append(f"\n(c) reports its own stage times; its peak memory {peak} covers all three.")
    checks = [
        f"({w}) {run[w]['checksum']['rows']:,} rows, sha256 {run[w]['checksum']['sha256'][:12]}"
        for w in ("a", "b", "c", "d", "e")
        if run.get(w, {}).get("checksum")
    ]
    if checks:
        lines.append("\nFeatures: " + "; ".join(checks) + ".")
    return lines + [""]


def status(t: dict) -> str:
    if t["met"] is None:
        return "not measured"
    unit = t["unit"]
    gap = abs(t["distance"])
    return f"met (margin {gap:,.2f} {unit})" if t["met"] else f"**missed** (by {gap:,.2f} {unit})"


def markdown(summary: dict) -> str:
    m, o = summary["machine"], summary["options"]
    lines = [
        f"# Benchmark {summary['date']}",
        "",
        f"{m['cpus']} cores, {m['memory_gb']:.1f} GB RAM, load average {m['load_at_start']} at start and "
        f"{m.get('load_at_end')} at end (the machine is shared: expect noise). Versions: "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + ".",
        (
            f"Options: scales {o['scales']}, contenders {o['contenders']}, DuckDB memory_limit for (a) and (b): "
            f"{o['duckdb_memory_limit'] or 'DuckDB default (80% of RAM)'}, (a) trains at scales <= {o['train_up_to']}. "
            f"Wall time {summary['wall_seconds'] / 60:.1f} min."
        ),
        "",
        (
            "(a) the platform through Dagster (one in-process run per layer over the year), (b) the same work as one "
            "bare DuckDB script on a DuckDB file (round 1's warehouse), (c) the pandas baseline, (d) the script of (b) "
            "on the DuckLake warehouse (embedded), (e) an independent anchor: a minimal DuckDB script from the same "
            "files written apart from the platform's SQL (benchmarks/anchor.py), the lower bound. "
            "rows/s = flights of the scale / seconds."
        ),
        "",
        "## Targets",
        "",
        "| target | measured | limit | status | note |",
        "|---|---:|---:|---|---|",
    ]
    for t in summary["targets"]:
        measured = "-" if t["measured"] is None else f"{t['measured']:,.2f} {t['unit']}"
        lines.append(f"| {t['target']} | {measured} | {t['limit']} {t['unit']} | {status(t)} | {t['note'] or ''} |")
    if summary.get("before"):
        lines += [""] + _before_after(summary)
    lines += ["", "## Full year", ""]
    for scale, run in summary["scales"].items():
        lines += _scale_table(scale, run)
    inc = summary.get("incremental")
    if inc:
        lines += ["## Incremental day (x1, file to predictions, in process)", ""]
        if "points" in inc:
            lines += [
                "| history | days measured | median | samples (lake + warehouse + features + predictions) |",
                "|---:|---|---:|---|",
            ]
            for p in inc["points"]:
                days = ", ".join(s["day"] for s in p["samples"])
                samples = "; ".join(
                    f"{s['seconds']:.1f} s (" + " + ".join(f"{v:.1f}" for v in s["steps"].values()) + ")"
                    for s in p["samples"]
                )
                lines.append(f"| {p['history']} days | {days} | {_s(p['median_seconds'])} | {samples} |")
            last = inc["points"][-1]["samples"]
            lines.append(
                f"\n365/30 ratio of the medians: **{_x(inc['ratio_last_first'])}** (target <= 1.3x). The year "
                f"has 365 days: the last point lands {last[0]['day']}..{last[-1]['day']} after "
                f"{last[0]['history_days']}-{last[-1]['history_days']} days of history."
            )
        else:
            lines.append(inc.get("skipped") or inc.get("error", ""))
        lines.append("")
    lines += _concurrency_section(summary.get("concurrency"))
    lines += _online_section(summary.get("online"))
    sensor = summary.get("sensor")
    if sensor:
        lines += ["## Sensor latency (`ml-platform up` / `dagster dev`)", ""]
        if "samples" in sensor:
            lines.append(
                f"The first {sensor['history_days']} days landed and automated to predictions in "
                f"{sensor['settle_seconds']:.0f} s; then one day at a time, each once the platform was idle:"
            )
            lines += [
                "",
                "| day landed | raw flights | features | predictions | runs it caused |",
                "|---|---:|---:|---:|---|",
            ]
            for sample in sensor["samples"]:
                after = sample["seconds_after_landing"]
                cells = " | ".join(_s(after.get(k)) for k in ("raw_flights", "features", "predictions"))
                lines.append(f"| {sample['day']} | {cells} | {', '.join(sample['runs']) or '-'} |")
            lines.append(
                f"\nMedian file → {sensor['measured_to']}: **{_s(sensor['latency_seconds'])}**, "
                f"max {_s(sensor['max_latency_seconds'])} (target < 60 s)."
            )
            if sensor.get("note"):
                lines.append(f"\nNote: {sensor['note']}.")
        else:
            lines.append(sensor.get("skipped") or sensor.get("error", ""))
        lines.append("")
    if summary["failures"]:
        lines += ["## FAILED", ""] + [f"- {f}" for f in summary["failures"]] + [""]
    return "\n".join(lines)


def _concurrency_section(result: dict | None) -> list[str]:
    if not result:
        return []
    lines = ["## Concurrent runs (x1, a backfill of one-day runs, embedded DuckLake)", ""]
    if "levels" not in result:
        return lines + [result.get("skipped") or result.get("error", ""), ""]
    lines += [
        f"{result['days']} days, each {' + '.join(result['jobs_per_day'])} as runs of their own; N processes share "
        "the days and run them in process on one instance (the repository's dagster.yaml: one pool per table, "
        "limit 1).",
        "",
        "| runs at once | wall | speed-up | runs | failed | lock errors |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n, level in result["levels"].items():
        lines.append(
            f"| {n} | {_s(level['wall_seconds'])} | {_x(level.get('speedup'))} | {level['runs']} | "
            f"{len(level['failed_runs'])} | {level['lock_errors']} |"
        )
    same = "the same rows at every level" if result["same_rows_at_every_level"] else "**different rows between levels**"
    return lines + ["", f"Warehouse tables: {same}.", ""]


def _online_section(result: dict | None) -> list[str]:
    if not result:
        return []
    lines = ["## Online path (benchmarks/online.py)", ""]
    if "stream" not in result:
        return lines + [result.get("skipped") or result.get("error", ""), ""]
    stream = result["stream"]
    if "failed" in stream:
        lines.append(f"Stream: failed: {stream['failed']}")
    else:
        lines.append(
            f"Stream: {stream['events']:,} events sent at {stream['rate_sent']:,}/s into the embedded broker; "
            f"produce-to-lake latency p50 {_s(stream['p50_seconds'])}, p95 **{_s(stream['p95_seconds'])}** "
            f"(target < 5 s), max {_s(stream['max_seconds'])}; the lake took {stream['lake_events_per_second']:,.0f} "
            "events/s."
        )
    serving = result.get("serving") or {}
    if "failed" in serving:
        return lines + ["", f"Serving: failed: {serving['failed']}", ""]
    mlflow = serving.get("mlflow_models_serve") or {}
    rows = [
        ("`POST /predict`, 1 flight (Redis read + scoring)", serving.get("service_1")),
        ("`POST /predict`, 100 flights", serving.get("service_100")),
        ("`predict_proba` in process, 1 row (the floor)", serving.get("in_process_1")),
        ("`predict_proba` in process, 100 rows", serving.get("in_process_100")),
        ("`mlflow models serve`, 1 row of features", mlflow.get("1")),
        ("`mlflow models serve`, 100 rows of features", mlflow.get("100")),
    ]
    lines += ["", "| prediction | p50 | p99 |", "|---|---:|---:|"]
    for name, stats in rows:
        if stats:
            lines.append(f"| {name} | {stats['p50_ms']:.1f} ms | {stats['p99_ms']:.1f} ms |")
    load = serving.get("service_4_clients") or {}
    if load:
        lines.append(
            f"\n4 clients, 1 flight each: {load['requests_per_second']:.0f} requests/s, p99 {load['p99_ms']:.1f} ms."
        )
    if mlflow.get("skipped"):
        lines.append(f"\n`mlflow models serve`: {mlflow['skipped']}")
    return lines + [""]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")  # *.tmp is git-ignored
    tmp.write_text(text)
    os.replace(tmp, path)


def write(summary: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{summary['date']}.json", out_dir / f"{summary['date']}.md"
    _write_atomic(json_path, json.dumps(summary, indent=2, default=str) + "\n")
    _write_atomic(md_path, markdown(summary))
    return json_path, md_path
