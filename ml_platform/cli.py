"""The ``ml-platform`` command: seed the data home, replay history, serve weather, start everything."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from ml_platform.settings import Settings


def seed(settings: Settings) -> None:
    """Create the data home and load the reference tables into the operational database."""
    from ml_platform.lib.ops_db import seed_reference_tables
    from ml_platform.lib.storage import is_s3
    from ml_platform.lib.tracking import embedded_backend, upgrade_backend

    settings.home.mkdir(parents=True, exist_ok=True)
    for url in (settings.landing_url, settings.lake_url):
        if not is_s3(url):
            Path(url).mkdir(parents=True, exist_ok=True)
    counts = seed_reference_tables(settings.ops_db_url)
    backend, _ = embedded_backend(settings.home)
    upgrade_backend(backend)
    print(f"data home: {settings.home}")
    print(f"  MLflow backend: {backend}")
    for table, rows in counts.items():
        print(f"  {table}: {rows:,} rows in {settings.ops_db_url}")


def replay(settings: Settings, start: dt.date, days: int) -> None:
    """Land each day's real flights in the landing zone, one CSV per day, with a progress bar."""
    from tqdm import tqdm

    from ml_platform.lib.replay import replay_days
    from ml_platform.lib.storage import open_store

    store = open_store(settings.landing_url)
    with tqdm(total=days, unit="day", desc=f"replay to {settings.landing_url}") as bar:
        for day, outcome in replay_days(store, start, days):
            bar.set_postfix_str(f"{day}: {outcome}")
            bar.update()


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
        from ml_platform.lib.weather_api import serve

        serve(args.host, args.port)
    elif args.command == "up":
        from ml_platform.services import up as start_everything

        return start_everything(
            settings,
            dagster_port=args.dagster_port,
            mlflow_port=args.mlflow_port,
            replay_days=args.replay_days,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
