"""A real MLflow tracking server on 127.0.0.1 for the tests: SQLite backend, local artifacts.

Import the fixture where it is needed::

    from ml_platform_tests.mlflow_server import mlflow_server  # noqa: F401

One server per test session (it takes ~15 s to start). Only the server process
touches its SQLite file, so tests may log from several threads or processes at once.
Never the file store (``./mlruns``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ml_platform.ops.mlflow_backend import upgrade_backend

STARTUP_TIMEOUT_SECONDS = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGINT the server's process group (uvicorn and its worker), then SIGKILL what is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    # The group may outlive its leader (a worker still exiting): make sure nothing stays behind.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait()


def start_mlflow_server(folder: Path) -> tuple[str, subprocess.Popen]:
    """Start ``mlflow server`` on a free loopback port with its backend in ``folder``; wait for /health."""
    folder.mkdir(parents=True, exist_ok=True)
    folder = folder.resolve()
    backend = f"sqlite:///{folder / 'mlflow.db'}"
    artifacts = (folder / "artifacts").as_uri()
    upgrade_backend(backend)  # once, before the server, so no two processes race on migrations
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(folder / "server.log", "wb")  # noqa: SIM115 - closed with the process
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        artifacts,
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(cmd, env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    try:
        while not _healthy(url):
            if proc.poll() is not None:
                tail = (folder / "server.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"mlflow server exited with code {proc.returncode} before answering:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"mlflow server on {url} did not answer /health after {STARTUP_TIMEOUT_SECONDS}s")
            time.sleep(0.25)
    except BaseException:
        _stop(proc)
        raise
    return url, proc


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """The URL (``http://127.0.0.1:PORT``) of a real MLflow server for this test session."""
    url, proc = start_mlflow_server(tmp_path_factory.mktemp("mlflow"))
    try:
        yield url
    finally:
        _stop(proc)
