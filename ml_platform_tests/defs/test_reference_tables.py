"""Reference tables: observed in the operational database (SQLite by default, a real PostgreSQL
server too); only a change of content moves the lake copy, and the copy is exact."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa

from ml_platform.defs import keys
from ml_platform.defs.lake.reference import raw_reference_tables
from ml_platform.domain import lake_layout
from ml_platform.io import ops_db
from ml_platform.io.store import open_store
from ml_platform.ops.bootstrap import seed
from ml_platform.settings import Settings
from ml_platform_tests.helpers import platform_defs


def _observe(instance: dg.DagsterInstance) -> None:
    """What the observe_reference_tables schedule runs."""
    defs = platform_defs()
    job = defs.resolve_job_def(defs.resolve_schedule_def("observe_reference_tables").job_name)
    assert job.execute_in_process(instance=instance).success


def _requested(defs: dg.Definitions, instance: dg.DagsterInstance, cursor):
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    raw = [keys.RAW_TABLES[t] for t in ("airlines", "airports", "planes")]
    return {k.to_user_string() for k in raw if result.get_num_requested(k)}, result.cursor


@pytest.fixture(params=["sqlite", "postgres"])
def ops_settings(request, settings, monkeypatch) -> Settings:
    if request.param == "postgres":
        monkeypatch.setenv("ML_PLATFORM_OPS_DB_URL", request.getfixturevalue("postgres_url"))
    configured = Settings.from_env()
    seed(configured)
    return configured


def test_seed_loads_the_real_reference_tables(ops_settings):
    counts = {t: ops_db.read_table(ops_settings.ops_db_url, t).height for t in ("airlines", "airports", "planes")}
    assert counts == {"airlines": 16, "airports": 1458, "planes": 3322}
    planes = ops_db.read_table(ops_settings.ops_db_url, "planes")
    n10156 = planes.filter(pl.col("tailnum") == "N10156").row(0, named=True)
    assert (n10156["year"], n10156["manufacturer"], n10156["seats"]) == (2004, "EMBRAER", 55)


def test_only_changed_content_moves_the_lake_copy(ops_settings):
    with dg.instance_for_test() as instance:
        defs = platform_defs()
        requested, cursor = _requested(defs, instance, None)
        assert requested == set()  # nothing observed yet
        _observe(instance)
        requested, cursor = _requested(defs, instance, cursor)
        assert requested == {"lake/raw_airlines", "lake/raw_airports", "lake/raw_planes"}  # first sight of each
        dg.materialize(raw_reference_tables, instance=instance, resources=defs.resources)
        lake_planes = pl.read_parquet(open_store(ops_settings.lake_url).uri(lake_layout.table_path("planes")))
        assert lake_planes.height == 3322

        _observe(instance)  # nothing changed in the database
        requested, cursor = _requested(defs, instance, cursor)
        assert requested == set()

        eng = sa.create_engine(ops_settings.ops_db_url)
        with eng.begin() as conn:
            conn.execute(sa.text("UPDATE planes SET seats = 56 WHERE tailnum = 'N10156'"))
        eng.dispose()
        _observe(instance)
        requested, cursor = _requested(defs, instance, cursor)
        assert requested == {"lake/raw_planes"}  # only the table that changed
        assert _requested(defs, instance, cursor)[0] == set()  # and only once
