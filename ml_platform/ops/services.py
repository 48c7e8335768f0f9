"""``make run``: seed the data home if needed, then run every service of the embedded profile.

Each service runs in its own process group on 127.0.0.1, its output in ``<home>/logs/<name>.log``;
the terminal shows what a person needs: the addresses, then each run as it starts and ends.
A service that dies is started again (up to ``MAX_RESTARTS`` times within ``RESTART_WINDOW``
seconds); one that keeps dying stops everything with a non-zero exit. Ctrl-C stops them all.

The addresses this home's services listen on are written to ``<home>/services.json``, so the
other commands (``replay``, ``stream``, ``serve``) and a second data home never mix them up: a
default port already taken by another home's service is replaced by a free one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from ml_platform.io.warehouse import WarehouseConfigError, check_warehouse
from ml_platform.ops.bootstrap import is_seeded, prepare_dagster_home, replay, seed
from ml_platform.ops.mlflow_backend import embedded_backend, upgrade_backend
from ml_platform.serving.online_store import key_prefix_for_home
from ml_platform.settings import REPO_ROOT, Settings

MAX_RESTARTS, RESTART_WINDOW = 3, 600
DEFAULT_PORTS = {"dagster": 3000, "mlflow": 5000, "weather": 8765, "kafka": 9092, "serving": 8770}
SERVICES_FILE = "services.json"


def port_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now (connections still closing do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def choose_port(wanted: int) -> int:
    """``wanted`` when it is free on 127.0.0.1, else a free port (another home may hold it)."""
    return wanted if port_free(wanted) else free_port()


def running_services(home: Path) -> dict:
    """The addresses ``ml-platform up`` wrote for this home (empty when it never ran)."""
    path = home / SERVICES_FILE
    return json.loads(path.read_text()) if path.exists() else {}


@dataclass
class Service:
    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.command, env=self.env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def interrupt(self) -> None:
        """Ask it to stop (SIGINT to its group: dagster and uvicorn shut down cleanly on it)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 30) -> None:
        """Interrupt it and wait ``timeout`` seconds, then SIGKILL its group."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.interrupt()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


def server_commands(ports: dict[str, int], *mlflow_stores: str) -> dict[str, list[str]]:
    """The servers both profiles start, on 127.0.0.1: MLflow (with its host allow-list and the
    ``mlflow_stores`` options; without them it reads its stores from the environment), the
    Dagster webserver and the daemon."""
    bin_dir = Path(sys.executable).parent
    workspace = str(REPO_ROOT / "workspace.yaml")
    mlflow_port = ports["mlflow"]
    return {
        "mlflow": [str(bin_dir / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port)]
        + ["--workers", "1", *mlflow_stores, "--allowed-hosts", f"127.0.0.1:{mlflow_port},localhost:{mlflow_port}"],
        "dagster-webserver": [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(ports["dagster"])]
        + ["-w", workspace],
        "dagster-daemon": [str(bin_dir / "dagster-daemon"), "run", "-w", workspace],
    }


def _commands(settings: Settings, ports: dict[str, int], bootstrap: str | None) -> dict[str, list[str]]:
    bin_dir = Path(sys.executable).parent
    python = str(Path(sys.executable))
    backend, artifacts = embedded_backend(settings.home)
    commands = {
        "weather-api": [str(bin_dir / "ml-platform"), "weather-api", "--port", str(ports["weather"])],
        **server_commands(ports, "--backend-store-uri", backend, "--artifacts-destination", artifacts),
        "serving": [str(bin_dir / "ml-platform"), "serve", "--port", str(ports["serving"])],
    }
    if bootstrap is None:  # the embedded broker, and the sink into this home's lake
        commands["kafka"] = [
            python,
            "-m",
            "ml_platform.stream.broker",
            "--data-dir",
            str(settings.home / "kafka"),
            "--port",
            str(ports["kafka"]),
        ]
    commands["stream-sink"] = [python, "-m", "ml_platform.stream.sink", "--lake", settings.lake_url]
    commands["stream-sink"] += ["--redis-url", settings.redis_url, "--key-prefix", key_prefix_for_home(settings.home)]
    return commands


def _report_runs(instance, seen: dict[str, str]) -> None:
    """Print each run once when it starts and once when it ends."""
    from dagster import DagsterRunStatus, RunsFilter

    for record in instance.get_run_records(RunsFilter(), limit=50):
        run = record.dagster_run
        status = run.status
        if seen.get(run.run_id) == status.value:
            continue
        tags = run.tags
        window = tags.get("dagster/partition") or (
            f"{tags['dagster/asset_partition_range_start']}..{tags['dagster/asset_partition_range_end']}"
            if "dagster/asset_partition_range_start" in tags
            else ""
        )
        if status == DagsterRunStatus.STARTED or status in (
            DagsterRunStatus.SUCCESS,
            DagsterRunStatus.FAILURE,
            DagsterRunStatus.CANCELED,
        ):
            stamp = time.strftime("%H:%M:%S")
            print(f"{stamp}  {status.value.lower():8} {run.job_name} {window}  ({run.run_id[:8]})", flush=True)
        seen[run.run_id] = status.value


def up(
    settings: Settings,
    *,
    dagster_port: int,
    mlflow_port: int,
    replay_days: int,
    profile: str = "embedded",
    celery_workers: int = 2,
) -> int:
    if profile == "production":  # servers named by the environment: ml_platform/ops/production.py
        from ml_platform.ops import production

        return production.up(
            settings,
            dagster_port=dagster_port,
            mlflow_port=mlflow_port,
            replay_days=replay_days,
            workers=celery_workers,
        )
    if not is_seeded(settings):
        seed(settings)
    else:  # a newer MLflow may bring a newer schema
        upgrade_backend(embedded_backend(settings.home)[0])
    try:  # a wrong catalog or lake setting is said now, naming it, not mid-run
        check_warehouse(settings.warehouse, lake_url=settings.lake_url)
    except WarehouseConfigError as e:
        print(e, file=sys.stderr)
        return 2
    if replay_days:
        import datetime as dt

        replay(settings, dt.date(2013, 1, 1), replay_days)
    ports = {
        "dagster": choose_port(dagster_port),
        "mlflow": choose_port(mlflow_port),
        "weather": urlparse(settings.weather_api_url).port
        if os.environ.get("ML_PLATFORM_WEATHER_API_URL")
        else choose_port(DEFAULT_PORTS["weather"]),
        "kafka": choose_port(DEFAULT_PORTS["kafka"]),
        "serving": choose_port(DEFAULT_PORTS["serving"]),
    }
    bootstrap = settings.kafka_bootstrap or None
    mlflow_url = f"http://127.0.0.1:{ports['mlflow']}"  # the server started here, unless one is set
    dagster_home = prepare_dagster_home(settings)
    _create_dagster_storage(dagster_home)
    addresses = {
        "dagster": f"http://127.0.0.1:{ports['dagster']}",
        "mlflow": os.environ.get("MLFLOW_TRACKING_URI") or mlflow_url,
        "weather_api": f"http://127.0.0.1:{ports['weather']}",
        "kafka": bootstrap or f"127.0.0.1:{ports['kafka']}",
        "serving": f"http://127.0.0.1:{ports['serving']}",
    }
    env = {
        **os.environ,
        "ML_PLATFORM_HOME": str(settings.home),
        "DAGSTER_HOME": str(dagster_home),
        "MLFLOW_TRACKING_URI": addresses["mlflow"],
        "ML_PLATFORM_MLFLOW_UI_URL": os.environ.get("ML_PLATFORM_MLFLOW_UI_URL") or mlflow_url,
        "ML_PLATFORM_WEATHER_API_URL": addresses["weather_api"],
        "ML_PLATFORM_KAFKA_BOOTSTRAP": addresses["kafka"],
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    (settings.home / SERVICES_FILE).write_text(json.dumps(addresses, indent=1) + "\n")
    # MLflow's job runner (GenAI scorers) is not used here; off, it spares eight processes.
    extra_env = {"mlflow": {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, "serving": {"OMP_NUM_THREADS": "1"}}
    logs = settings.home / "logs"
    services = [
        Service(name, cmd, {**env, **extra_env.get(name, {})}, logs / f"{name}.log")
        for name, cmd in _commands(settings, ports, bootstrap).items()
    ]
    # Started in the background by a shell, this process would ignore SIGINT; handle it anyway.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        for service in services:
            service.start()
        print(
            f"\nDagster UI   {addresses['dagster']}\nMLflow UI    {mlflow_url}\n"
            f"Predictions  {addresses['serving']}/docs\nWeather API  {addresses['weather_api']}\n"
            f"Kafka        {addresses['kafka']}\nLogs         {logs}/\nCtrl-C stops everything.\n",
            flush=True,
        )
        return _supervise(services, dagster_home)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        for service in reversed(services):  # all at once: Ctrl-C takes the slowest one's time, not the sum
            service.interrupt()
        for service in reversed(services):
            service.stop()


def _create_dagster_storage(dagster_home: Path) -> None:
    """Create the instance's databases here, once, before the webserver and the daemon start:
    both would otherwise create them at the same moment, and two schema stamps in one SQLite
    file leave a storage neither can open again ("more than one head present")."""
    import dagster as dg

    dg.DagsterInstance.from_config(str(dagster_home)).dispose()  # opening it creates them


def _supervise(services: list[Service], dagster_home: Path) -> int:
    import dagster as dg

    instance = None
    seen: dict[str, str] = {}
    while True:
        for service in services:
            if service.proc.poll() is None:
                continue
            now = time.monotonic()
            service.restarts = [t for t in service.restarts if now - t < RESTART_WINDOW] + [now]
            if len(service.restarts) > MAX_RESTARTS:
                print(
                    f"{service.name} exited {len(service.restarts)} times in {RESTART_WINDOW // 60} minutes "
                    f"(code {service.proc.returncode}); stopping. See {service.log}",
                    flush=True,
                )
                return service.proc.returncode or 1
            print(
                f"{service.name} exited with code {service.proc.returncode}; starting it again (see {service.log})",
                flush=True,
            )
            service.start()
        try:
            instance = instance or dg.DagsterInstance.from_config(str(dagster_home))
            _report_runs(instance, seen)
        except Exception:  # noqa: BLE001 - the instance may not exist yet; the terminal report is best effort
            instance = None
        time.sleep(2)
