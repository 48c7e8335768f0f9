"""The asset graph as it is meant to be: every asset key, its group, what it depends on, its checks,
jobs and sensors. An accidental change to the graph fails here with the difference; an intended one
is recorded with ``ML_PLATFORM_UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest ml_platform_tests/defs/test_definitions_snapshot.py``."""

import json
import os
from pathlib import Path

from ml_platform_tests.helpers import platform_defs

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def _graph() -> dict:
    defs = platform_defs()
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "checks": sorted(
                f"{c.name}{' (blocking)' if c.blocking else ''}" for c in map(graph.get_check_spec, node.check_keys)
            ),
            "partitioned": node.partitions_def is not None,
            "automated": node.automation_condition is not None,
            "pools": sorted(node.pools or []),
        }
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
        "sensors": sorted(s.name for s in defs.sensors),
        "schedules": sorted(s.name for s in defs.schedules),
    }


def test_the_graph_is_the_recorded_one():
    graph = _graph()
    if os.environ.get("ML_PLATFORM_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(graph, indent=1, sort_keys=True) + "\n")
    recorded = json.loads(SNAPSHOT.read_text())
    changed = {
        key: {"recorded": recorded["assets"].get(key), "now": graph["assets"].get(key)}
        for key in sorted(set(recorded["assets"]) | set(graph["assets"]))
        if recorded["assets"].get(key) != graph["assets"].get(key)
    }
    assert not changed, json.dumps(changed, indent=1)
    assert {k: v for k, v in graph.items() if k != "assets"} == {k: v for k, v in recorded.items() if k != "assets"}
