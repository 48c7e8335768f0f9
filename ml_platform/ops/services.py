"""``make run``: seed the data home if needed, then run the weather API, MLflow and Dagster.

Each service runs in its own process group on 127.0.0.1, in the foreground of
this command; Ctrl-C (or any service dying) stops them all cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from ml_platform.ops.bootstrap import is_seeded, prepare_dagster_home, replay, seed
from ml_platform.ops.mlflow_backend import embedded_backend, upgrade_backend
from ml_platform.settings import REPO_ROOT, Settings


def _commands(settings: Settings, dagster_port: int, mlflow_port: int) -> dict[str, list[str]]:
    bin_dir = Path(sys.executable).parent
    weather_port = urlparse(settings.weather_api_url).port or 8765
    backend, artifacts = embedded_backend(settings.home)
    return {
        "weather-api": [str(bin_dir / "ml-platform"), "weather-api", "--port", str(weather_port)],
        "mlflow": [
            str(bin_dir / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
            "--workers",
            "1",
            "--backend-store-uri",
            backend,
            "--artifacts-destination",
            artifacts,
        ],
        "dagster": [
            str(bin_dir / "dagster"),
            "dev",
            "-h",
            "127.0.0.1",
            "-p",
            str(dagster_port),
            "-w",
            str(REPO_ROOT / "workspace.yaml"),
        ],
    }


def stop(procs: dict[str, subprocess.Popen], timeout: float = 30) -> None:
    """SIGINT each process group (dagster dev shuts down cleanly on it), then SIGKILL stragglers."""
    for proc in procs.values():
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for proc in procs.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def up(settings: Settings, *, dagster_port: int, mlflow_port: int, replay_days: int) -> int:
    if not is_seeded(settings):
        seed(settings)
    else:  # a newer MLflow may bring a newer schema
        upgrade_backend(embedded_backend(settings.home)[0])
    if replay_days:
        import datetime as dt

        replay(settings, dt.date(2013, 1, 1), replay_days)
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"  # the server started here, unless one is set
    env = {
        **os.environ,
        "ML_PLATFORM_HOME": str(settings.home),
        "DAGSTER_HOME": str(prepare_dagster_home(settings)),
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI") or mlflow_url,
        "ML_PLATFORM_MLFLOW_UI_URL": os.environ.get("ML_PLATFORM_MLFLOW_UI_URL") or mlflow_url,
    }
    # MLflow's job runner (GenAI scorers) is not used here; off, it spares eight processes.
    service_env = {"mlflow": {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}}
    # Started in the background by a shell, this process would ignore SIGINT; handle it anyway.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, cmd in _commands(settings, dagster_port, mlflow_port).items():
            procs[name] = subprocess.Popen(
                cmd, env={**env, **service_env.get(name, {})}, cwd=REPO_ROOT, start_new_session=True
            )
        print(
            f"\nDagster UI: http://127.0.0.1:{dagster_port}   MLflow UI: http://127.0.0.1:{mlflow_port}"
            f"   weather API: {settings.weather_api_url}\nCtrl-C stops everything.\n",
            flush=True,
        )
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping the rest", flush=True)
                    return proc.returncode or 1
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        stop(procs)
