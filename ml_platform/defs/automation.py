"""The sensor that evaluates every asset's automation condition, running from the start."""

import dagster as dg

# Dagster's implicit default sensor starts STOPPED and, once turned on, ignores what changed
# while it was off; declaring our own with a RUNNING default avoids both.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
    description="Rematerializes assets whose automation condition says their inputs changed.",
)
