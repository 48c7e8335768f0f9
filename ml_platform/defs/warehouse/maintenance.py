"""``warehouse/maintenance``: every night, compact each table's files and expire snapshots past the retention.

One step per table pool compacts the tables that pool's writers write, inside that pool, so a
compaction never overlaps a load of the same table (the two would conflict at commit). Then one
step, in the catalog's own pool, expires the snapshots older than
``ML_PLATFORM_SNAPSHOT_RETENTION_DAYS`` and deletes the files no remaining snapshot uses.
"""

import time

import dagster as dg

from ml_platform.defs.keys import WAREHOUSE_MAINTENANCE
from ml_platform.defs.pools import CATALOG_MAINTENANCE, WRITTEN_TABLES, pool_of_table
from ml_platform.defs.resources import WarehouseResource
from ml_platform.pipeline.warehouse import maintenance


def _compaction_op(pool_table: str) -> dg.OpDefinition:
    tables = WRITTEN_TABLES[pool_table]

    @dg.op(
        name=f"compact_{pool_table.replace('.', '__')}",
        pool=pool_of_table(pool_table),
        description=f"Merges the small files of {', '.join(tables)}.",
    )
    def _compact(warehouse: WarehouseResource) -> dict:
        with warehouse.connect() as conn:
            done = [maintenance.compact_table(conn, t) for t in tables]
        return {c.table: c.to_dict() for c in done if c is not None}

    return _compact


COMPACTION_OPS = [_compaction_op(t) for t in WRITTEN_TABLES]


@dg.op(pool=CATALOG_MAINTENANCE, ins={"compacted": dg.In(list)})
def expire_snapshots(context: dg.OpExecutionContext, warehouse: WarehouseResource, compacted: list) -> dg.Output:
    """Expires snapshots older than the retention and deletes files no snapshot uses any more."""
    started = time.perf_counter()
    days = warehouse.snapshot_retention_days
    with warehouse.connect() as conn:
        before = maintenance.snapshot_count(conn)
        expired = maintenance.expire_snapshots(conn, days)
        deleted = maintenance.delete_old_files(conn, days)
        after = maintenance.snapshot_count(conn)
    tables = {table: figures for part in compacted for table, figures in part.items()}
    context.log.info("expired %d of %d snapshots (retention %d days); %s", expired, before, days, deleted)
    return dg.Output(
        None,
        metadata={
            "retention_days": days,
            "snapshots_before": before,
            "snapshots_expired": expired,
            "snapshots_after": after,
            **deleted,
            "files_before": sum(f["files_before"] for f in tables.values()),
            "files_after": sum(f["files_after"] for f in tables.values()),
            "compacted": dg.MetadataValue.json(tables),
            "expiry_seconds": round(time.perf_counter() - started, 2),
        },
    )


@dg.graph_asset(key=WAREHOUSE_MAINTENANCE, group_name="warehouse", kinds={"duckdb"}, owners=["team:data-platform"])
def warehouse_maintenance():
    """Housekeeping of the warehouse, not a table: every table's small files merged (same rows, same
    snapshots), then snapshots older than the retention expired (time travel reaches back that far)
    and the files only they used deleted. Its metadata says how many files and snapshots before and after."""
    return expire_snapshots([op() for op in COMPACTION_OPS])


maintain_warehouse_job = dg.define_asset_job(
    "maintain_warehouse",
    selection=dg.AssetSelection.assets(WAREHOUSE_MAINTENANCE),
    description="Compacts every warehouse table's files and expires old snapshots (nightly).",
)

nightly_maintenance = dg.ScheduleDefinition(
    name="maintain_warehouse_nightly",
    job=maintain_warehouse_job,
    cron_schedule="30 3 * * *",
    execution_timezone="America/New_York",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Warehouse maintenance at 03:30 New York time, when nothing lands.",
)
