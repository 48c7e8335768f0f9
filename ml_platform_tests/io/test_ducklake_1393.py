"""Why each table's writers take turns: ducklake#1393, and the writer lock, on real catalogs.

Two processes replace the same new day of a table, the way every daily load does (DELETE the
day, INSERT it, in one transaction), the second starting while the first has not committed yet.

* Postgres catalog (production): DuckLake 1.5.5 commits both. The second DELETE saw no row, its
  INSERT is kept next to the first one's, and the day is there twice. Nothing in the warehouse
  code can prevent it; the Dagster pool per table does (``defs/pools.py``,
  ``defs/test_concurrent_runs.py``).
* SQLite catalog (embedded): ``transaction()`` holds the writer lock from BEGIN to COMMIT, so the
  second writer starts when the first has committed, its DELETE sees the day, and it is there once.
"""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest

from ml_platform.io.warehouse import WarehouseConfig, connect_warehouse, detach_warehouse, run_ddl, transaction
from ml_platform_tests.warehouses import PROFILES, embedded_config, postgres_database

ROWS = 1000
DAY = 7


LOCK_WAIT = 5.0  # how long writer 0 keeps its transaction open for writer 1 to write too


def _replace_day(config, writer: int, events, out) -> None:
    """DELETE day 7 and INSERT it as ``writer``. Writer 1 begins once writer 0 is inside its transaction;
    writer 0 commits once writer 1 wrote (or after LOCK_WAIT, if writer 1 is kept out); writer 1 commits last."""
    ready, inside, second_wrote, first_committed = events
    conn = connect_warehouse(config)
    if writer == 0:
        ready.wait(60)  # writer 1 is connected (on a busy machine that can take seconds)
    else:
        ready.set()
        inside.wait(60)
    started = time.monotonic()
    with transaction(conn):
        began = time.monotonic()
        (deleted,) = conn.execute("DELETE FROM core.daily WHERE day = $d", {"d": DAY}).fetchone()
        conn.execute("INSERT INTO core.daily SELECT $d, $w, range FROM range($n)", {"d": DAY, "w": writer, "n": ROWS})
        if writer == 0:
            inside.set()
            second_wrote.wait(LOCK_WAIT)
        else:
            second_wrote.set()
            first_committed.wait(60)
    if writer == 0:
        first_committed.set()
    out.put((writer, deleted, round(began - started, 2)))
    conn.close()


@pytest.fixture(params=PROFILES)
def config(request, tmp_path):
    """A new warehouse with a SQLite catalog, or with a Postgres one (data files in a folder, either way)."""
    if request.param == "embedded":
        config = embedded_config(tmp_path)
        yield config
        detach_warehouse(config)
        return
    with postgres_database() as libpq:
        config = WarehouseConfig(f"postgres:{libpq}", str(tmp_path / "data"))
        yield config
        detach_warehouse(config)


def test_two_replacements_of_a_new_day_overlap_only_without_the_lock(config):
    conn = connect_warehouse(config)
    run_ddl(
        conn, "CREATE SCHEMA IF NOT EXISTS core", "CREATE TABLE IF NOT EXISTS core.daily (day INT, w INT, x BIGINT)"
    )
    with transaction(conn):  # the table has history: other days are loaded
        conn.execute("INSERT INTO core.daily SELECT 1, -1, range FROM range($n)", {"n": ROWS})

    ctx = mp.get_context("spawn")
    events, out = (ctx.Event(), ctx.Event(), ctx.Event(), ctx.Event()), ctx.Queue()
    procs = [ctx.Process(target=_replace_day, args=(config, w, events, out)) for w in (0, 1)]
    for p in procs:
        p.start()
    results = {w: (deleted, waited) for w, deleted, waited in (out.get(timeout=60) for _ in procs)}
    for p in procs:
        p.join(30)
        assert p.exitcode == 0

    rows, writers = conn.execute(
        "SELECT count(*), count(DISTINCT w) FROM core.daily WHERE day = $d", {"d": DAY}
    ).fetchone()
    if config.kind == "sqlite":
        # Writer 1 waited for the lock until writer 0 committed, then replaced writer 0's day.
        assert results[1][1] >= LOCK_WAIT * 0.8
        assert results[1][0] == ROWS
        assert (rows, writers) == (ROWS, 1)
    else:
        # ducklake#1393: both DELETEs saw nothing, both commits kept their rows.
        assert results[1][0] == 0 and results[1][1] < LOCK_WAIT
        assert (rows, writers) == (2 * ROWS, 2), "ducklake#1393 no longer reproduces: is it fixed?"
    conn.close()
