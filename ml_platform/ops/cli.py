"""The ``ml-platform`` command: seed the data home, replay history as files or as a stream, serve the
weather and the predictions, start everything."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from ml_platform.ops.bootstrap import replay, seed
from ml_platform.settings import Settings


def stream(settings: Settings, start: dt.date, days: int, speed: float) -> int:
    """Replay days of flights into ``flight_events`` on this home's broker (or ML_PLATFORM_KAFKA_BOOTSTRAP)."""
    from ml_platform.ops.services import running_services
    from ml_platform.stream.producer import replay_stream

    bootstrap = settings.kafka_bootstrap or running_services(settings.home).get("kafka")
    if not bootstrap:
        print("no broker: start `make run` (the embedded broker) or set ML_PLATFORM_KAFKA_BOOTSTRAP", file=sys.stderr)
        return 2
    # The embedded broker (Tansu) loses acknowledged batches that an idempotent producer retries
    # across a broker crash; plain acks=all with one request in flight loses none (readers drop repeats).
    embedded = not settings.kafka_bootstrap or bootstrap == running_services(settings.home).get("kafka")
    summary = replay_stream(bootstrap, start, days, speed, idempotent=not embedded)
    print(
        f"sent {summary.sent} to {bootstrap}"
        + (f"; {summary.failed} failed: {summary.errors[:3]}" if summary.failed else "")
    )
    return 1 if summary.failed else 0


def serve(settings: Settings, host: str, port: int) -> None:
    """The prediction service for this home: its Redis keys, its champion, its lake."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ml_platform.serving.online_store import OnlineStoreSettings, key_prefix_for_home
    from ml_platform.serving.service import ServiceSettings
    from ml_platform.serving.service import serve as run_service

    online = OnlineStoreSettings(settings.redis_url, key_prefix_for_home(settings.home))
    run_service(
        ServiceSettings(
            online=online,
            tracking_uri=settings.mlflow_tracking_uri,
            lake_url=settings.lake_url,
            home=str(settings.home),
        ),
        host=host,
        port=port,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ml-platform", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("seed", help="create the data home and load airlines, airports, planes")
    rp = commands.add_parser("replay", help="land real 2013 flights, one CSV file per day")
    rp.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2013, 1, 1))
    rp.add_argument("--days", type=int, default=7)
    wp = commands.add_parser("weather-api", help="serve the real hourly weather over HTTP")
    wp.add_argument("--host", default="127.0.0.1")
    wp.add_argument("--port", type=int, default=8765)
    sp = commands.add_parser("stream", help="replay real 2013 flights as Kafka events in simulated time")
    sp.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2013, 1, 8))
    sp.add_argument("--days", type=int, default=2)
    sp.add_argument("--speed", type=float, default=3600, help="simulated seconds per second (0: as fast as possible)")
    pp = commands.add_parser("serve", help="the prediction service (FastAPI) on 127.0.0.1")
    pp.add_argument("--host", default="127.0.0.1")
    pp.add_argument("--port", type=int, default=8770)
    up = commands.add_parser("up", help="seed if needed, then run every service (what make run does)")
    up.add_argument("--dagster-port", type=int, default=3000)
    up.add_argument("--mlflow-port", type=int, default=5000)
    up.add_argument(
        "--replay-days", type=int, default=None, help="days of 2013 to land first (default 7; production 0)"
    )
    # The production profile: every store a server named by the environment (docs/profiles.md).
    up.add_argument("--profile", choices=("embedded", "production"), default="embedded")
    up.add_argument("--celery-workers", type=int, default=2, help="Celery workers the production profile starts")
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except ValueError as e:  # a malformed setting: its name and what it should be, no stack trace
        print(f"ml-platform: {e}", file=sys.stderr)
        return 2
    if args.command == "seed":
        seed(settings)
    elif args.command == "replay":
        try:
            replay(settings, args.start, args.days)
        except ValueError as e:
            parser.error(str(e))
    elif args.command == "stream":
        return stream(settings, args.start, args.days, args.speed)
    elif args.command == "serve":
        serve(settings, args.host, args.port)
    elif args.command == "weather-api":
        from ml_platform.devdata import weather_server

        weather_server.serve(args.host, args.port)
    elif args.command == "up":
        from ml_platform.ops.production import ProductionConfigError
        from ml_platform.ops.services import up as start_everything

        production = args.profile == "production"
        try:
            return start_everything(
                settings,
                dagster_port=args.dagster_port,
                mlflow_port=args.mlflow_port,
                replay_days=args.replay_days if args.replay_days is not None else (0 if production else 7),
                profile=args.profile,
                celery_workers=args.celery_workers,
            )
        except ProductionConfigError as e:
            print(f"ml-platform up --profile production: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
