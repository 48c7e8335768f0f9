"""Small helpers the tests share: load the platform's Definitions and run its jobs for real."""

from __future__ import annotations

import dagster as dg

from ml_platform.definitions import defs
from ml_platform.defs.partitions import RANGE_END_TAG, RANGE_START_TAG


def platform_defs() -> dg.Definitions:
    """The Definitions exactly as `dagster dev` loads them, from the current environment."""
    return defs()


def run_days(instance: dg.DagsterInstance, job_name: str, first: str, last: str | None = None):
    """Execute a job in process over one day or a range of days (one run for the range)."""
    job = platform_defs().resolve_job_def(job_name)
    if last is None or last == first:
        return job.execute_in_process(partition_key=first, instance=instance, raise_on_error=False)
    return job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        tags={
            RANGE_START_TAG: first,
            RANGE_END_TAG: last,
        },
    )
