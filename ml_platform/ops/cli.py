"""The ``ml-platform`` command: seed the data home, replay history, serve weather, start everything."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from ml_platform.ops.bootstrap import replay, seed
from ml_platform.settings import Settings


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
    up = commands.add_parser("up", help="seed if needed, then run the weather API, MLflow and Dagster")
    up.add_argument("--dagster-port", type=int, default=3000)
    up.add_argument("--mlflow-port", type=int, default=5000)
    up.add_argument("--replay-days", type=int, default=7)
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    if args.command == "seed":
        seed(settings)
    elif args.command == "replay":
        try:
            replay(settings, args.start, args.days)
        except ValueError as e:
            parser.error(str(e))
    elif args.command == "weather-api":
        from ml_platform.devdata.weather_server import serve

        serve(args.host, args.port)
    elif args.command == "up":
        from ml_platform.ops.services import up as start_everything

        return start_everything(
            settings,
            dagster_port=args.dagster_port,
            mlflow_port=args.mlflow_port,
            replay_days=args.replay_days,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
