"""A run whose process was killed gives its pool slot back by itself.

Seen on main before: after `kill -9` of a run during the warehouse load, the run stayed STARTED
and its slot in pool `warehouse` was never freed, so every later warehouse run waited forever.
Here the data home's instance (the repository's dagster.yaml) runs Dagster's own run monitoring
and slot reclamation against a run whose process is really gone: the run is marked failed and
its slot is free again, as the daemon does within about 20 s (poll every 10 s, free 10 s after).
"""

import logging
import subprocess
import sys
import time

import dagster as dg
from dagster._core.events import EngineEventData
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._daemon.monitoring.concurrency import execute_concurrency_slots_iteration
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from ml_platform.ops.bootstrap import prepare_dagster_home
from ml_platform.ops.run_launcher import MonitoredRunLauncher, process_alive
from ml_platform.settings import Settings

POOL = "warehouse/fct_flights"


class _Workspace:
    """What the concurrency iteration asks of the daemon's workspace: the instance."""

    def __init__(self, instance):
        self.instance = instance


def _started_run(instance: dg.DagsterInstance, pid: int) -> dg.DagsterRun:
    run = instance.create_run_for_job(dg.GraphDefinition("load_warehouse").to_job(), run_id=None)
    instance.handle_new_event(
        dg.EventLogEntry(
            error_info=None,
            level=logging.DEBUG,
            user_message="",
            run_id=run.run_id,
            timestamp=time.time(),
            dagster_event=dg.DagsterEvent(
                event_type_value="PIPELINE_START",
                job_name=run.job_name,
            ),
        )
    )
    instance.report_engine_event(f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid))
    return instance.get_run_by_id(run.run_id)


def test_a_killed_run_is_failed_and_its_slot_freed(tmp_path):
    home = prepare_dagster_home(Settings.from_env({"ML_PLATFORM_HOME": str(tmp_path / "home")}))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_launcher, MonitoredRunLauncher)
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 10
        # Like the real run process (a multiprocessing child), it has no "dagster" in its command line.
        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        run = _started_run(instance, worker.pid)
        assert run.status == DagsterRunStatus.STARTED
        instance.event_log_storage.set_concurrency_slots(POOL, 1)
        instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, "warehouse__fct_flights")
        assert instance.event_log_storage.get_concurrency_info(POOL).active_slot_count == 1

        record = instance.get_run_record_by_id(run.run_id)
        monitor_started_run(instance, None, record, logging.getLogger("test"))
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED  # alive: left alone

        assert not process_alive(worker.pid, started_by=time.time() - 3600)  # a pid reused by a newer process
        worker.kill()  # what `kill -9` of the run's process does
        time.sleep(0.5)
        assert not process_alive(worker.pid)  # dead, not yet reaped by its parent (a zombie)
        worker.wait()
        assert not process_alive(worker.pid)
        monitor_started_run(instance, None, instance.get_run_record_by_id(run.run_id), logging.getLogger("test"))
        failed = instance.get_run_by_id(run.run_id)
        assert failed.status == DagsterRunStatus.FAILURE

        time.sleep(11)  # free_slots_after_run_end_seconds
        list(execute_concurrency_slots_iteration(_Workspace(instance), logging.getLogger("test")))
        assert instance.event_log_storage.get_concurrency_info(POOL).active_slot_count == 0
