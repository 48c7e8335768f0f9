"""The catalog a person browses: every asset has a layer group (its key's first part), kinds, an owner,
a description and a trigger; sensors start running by default."""

from __future__ import annotations

import dagster as dg

from ml_platform_tests.helpers import platform_defs

LAYERS = {"sources", "lake", "warehouse", "features", "models", "serving"}
# Started by a sensor's job rather than an automation condition (the README's automation table).
SENSOR_STARTED = {"lake/raw_flights", "lake/raw_flight_events", "lake/raw_weather", "features/training_set"}
SCHEDULE_STARTED = {"warehouse/maintenance"}  # housekeeping, nightly (defs/warehouse/maintenance.py)
OUTSIDE = {
    "sources/landing_flights",
    "sources/kafka_flight_events",
    "sources/weather_api",
}  # outside the platform: watched, not materialized


def test_every_asset_is_catalogued_and_has_a_trigger():
    graph = platform_defs().resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node, name = graph.get(key), key.to_user_string()
        assert node.group_name in LAYERS, name
        assert key.path[0] == node.group_name, f"{name}: a key starts with its layer"
        assert node.kinds and node.owners and len(node.description or "") > 15, name
        if name not in SENSOR_STARTED | SCHEDULE_STARTED | OUTSIDE:
            assert node.automation_condition is not None, name


def test_sensors_run_from_the_start():
    defs = platform_defs()
    sensors = {s.name: s.default_status for s in defs.sensors}
    assert sensors == dict.fromkeys(
        ["landing_sensor", "stream_sensor", "automation_sensor", "retraining_sensor"], dg.DefaultSensorStatus.RUNNING
    )
    assert {s.name: s.default_status for s in defs.schedules} == {
        "observe_reference_tables": dg.DefaultScheduleStatus.RUNNING,
        "maintain_warehouse_nightly": dg.DefaultScheduleStatus.RUNNING,
    }
