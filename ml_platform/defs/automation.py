"""The sensor that evaluates every asset's automation condition, running from the start."""

import dagster as dg

# Dagster's implicit default sensor starts STOPPED and, once turned on, ignores what changed
# while it was off; declaring our own with a RUNNING default avoids both.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(include_sources=True),  # sources are observed too
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
    # One run per day holding every asset of that day (warehouse to performance), rather than a
    # backfill that launches a run per layer as each finishes: a landed day reaches its
    # predictions in one run instead of five.
    emit_backfills=False,
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
    # Dagster's all_deps_blocking_checks_passed() lets a dependency's checks count as passed when
    # the checks themselves are requested this tick, which checks without a condition of their own
    # never are; so a chain that never ran would go one layer per tick. Here a dependency
    # requested in the same run counts: its blocking checks stop this asset inside that run.
    checks_passed = dg.AutomationCondition.all_deps_match(
        dg.AutomationCondition.all_checks_match(dg.AutomationCondition.check_passed(), blocking_only=True)
        | dg.AutomationCondition.will_be_requested()
    ).with_label("all_deps_blocking_checks_passed")
    return (
        updated.since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & checks_passed
    ).with_label("on_upstream_change")
