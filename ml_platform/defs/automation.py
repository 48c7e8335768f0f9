"""The sensor that evaluates every asset's automation condition, running from the start."""

import dagster as dg

# Dagster's implicit default sensor starts STOPPED and, once turned on, ignores what changed
# while it was off; declaring our own with a RUNNING default avoids both.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(include_sources=True),  # sources are observed too
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
    description="Rematerializes assets whose automation condition says their inputs changed.",
)


def on_upstream_change(*, ignore: tuple[dg.AssetKey, ...] = ()) -> dg.AutomationCondition:
    """Rematerialize a partition when its upstream partitions changed and their checks passed.

    Unlike ``eager()`` this considers every partition, not only the latest time window, so
    replayed 2013 days fire as live days do. Updates of the ``ignore``d assets (dimensions
    every day depends on) do not re-run all history: a full-refresh run does that.
    """
    updated = dg.AutomationCondition.any_deps_updated()
    if ignore:
        updated = updated.ignore(dg.AssetSelection.assets(*ignore))
    return (
        updated.since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("on_upstream_change")
