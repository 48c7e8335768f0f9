"""Setting up a data home: its folders, the reference data, MLflow's store, the Dagster instance.

``seed`` and ``replay`` are what ``ml-platform seed`` / ``replay`` run, and what ``make run``
does first on a fresh data home.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from ml_platform.devdata.reference_data import read_reference_table
from ml_platform.domain.flights import REFERENCE_TABLES
from ml_platform.io.ops_db import replace_tables
from ml_platform.io.store import is_s3, open_store
from ml_platform.ops.mlflow_backend import embedded_backend, upgrade_backend
from ml_platform.settings import REPO_ROOT, Settings

# The storage folder the repository's dagster.yaml names (relative to the repository root).
DEFAULT_DAGSTER_STORAGE = ".ml_platform/dagster"


def seed(settings: Settings) -> None:
    """Create the data home and load the reference tables into the operational database."""
    settings.home.mkdir(parents=True, exist_ok=True)
    for url in (settings.landing_url, settings.lake_url):
        if not is_s3(url):
            Path(url).mkdir(parents=True, exist_ok=True)
    counts = replace_tables(settings.ops_db_url, {name: read_reference_table(name) for name in REFERENCE_TABLES})
    backend, _ = embedded_backend(settings.home)
    upgrade_backend(backend)
    print(f"data home: {settings.home}")
    print(f"  MLflow backend: {backend}")
    for table, rows in counts.items():
        print(f"  {table}: {rows:,} rows in {settings.ops_db_url}")


def replay(settings: Settings, start: dt.date, days: int) -> None:
    """Land each day's real flights in the landing zone, one CSV per day, with a progress bar."""
    from tqdm import tqdm

    from ml_platform.devdata.replay import replay_days

    store = open_store(settings.landing_url)
    with tqdm(total=days, unit="day", desc=f"replay to {settings.landing_url}") as bar:
        for day, outcome in replay_days(store, start, days):
            bar.set_postfix_str(f"{day}: {outcome}")
            bar.update()


def is_seeded(settings: Settings) -> bool:
    eng = sa.create_engine(settings.ops_db_url)
    try:
        return sa.inspect(eng).has_table("planes")
    except sa.exc.OperationalError:
        return False
    finally:
        eng.dispose()


def prepare_dagster_home(settings: Settings) -> Path:
    """Write the repository's dagster.yaml into the data home, with storage under that home.

    With the default home this is the same storage ``dagster dev`` uses when run by
    hand from the repository root, so history, cursors and run keys are shared.
    """
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    text = (REPO_ROOT / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text(text.replace(DEFAULT_DAGSTER_STORAGE, str(home)))
    return home
