"""Dagster's default run launcher, plus the health check that lets run monitoring see a dead run.

The default launcher starts each run in a process on this machine but cannot tell the daemon
whether that process still lives, so a run whose process was killed (``kill -9``, out of
memory) would stay STARTED forever and keep its pool slots. Here the check looks up the pid
the run recorded when it started; when that process is gone, run monitoring marks the run
failed, its slots are freed ``free_slots_after_run_end_seconds`` later, and run retries start
it again (dagster.yaml). Only for runs on the daemon's machine, which is what this launcher does.
"""

from __future__ import annotations

import psutil
from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun


def _run_pid(instance, run_id: str) -> tuple[int, float] | None:
    """The pid of the run's process and when it said so, from its "Started process for run" event."""
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = record.dagster_event.event_specific_data if record.dagster_event else None
        pid = getattr(data, "metadata", {}).get("pid") if data is not None else None
        if pid is not None:
            return int(pid.value), record.timestamp
    return None


def process_alive(pid: int, started_by: float | None = None) -> bool:
    """Whether process ``pid`` lives (a killed process its parent has not reaped yet does not),
    and (with ``started_by``) was started by then, so a later process that reused the number
    does not count."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started_by is None or process.create_time() <= started_by + 1
    except psutil.NoSuchProcess:
        return False


class MonitoredRunLauncher(DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        recorded = _run_pid(self._instance, run.run_id)
        if recorded is None:  # not started by this launcher (or not yet): never failed on a guess
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run has recorded no process")
        pid, at = recorded
        if process_alive(pid, at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"process {pid} is running")
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the run's process {pid} is gone (killed or out of memory)")
