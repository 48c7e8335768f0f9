"""Airlines, airports and planes: observed in the operational database, copied to the lake on change.

A schedule observes each table and records a data version computed from its
content. The lake copies rematerialize only when that version changed, so an
unchanged table moves nothing downstream and a changed one does.
"""

import dagster as dg

from ml_platform.defs.keys import OPS_TABLES, RAW_TABLES
from ml_platform.defs.metadata import table_metadata
from ml_platform.defs.resources import OpsDatabaseResource, StoreResource
from ml_platform.domain import lake_layout
from ml_platform.domain.flights import REFERENCE_TABLES
from ml_platform.io import ops_db
from ml_platform.pipeline import lake

DESCRIPTIONS = {
    "airlines": "Airline carriers by two-letter code and name.",
    "airports": "Airports by FAA code, with location, altitude and time zone.",
    "planes": "Aircraft by tail number: build year, manufacturer, model, engines and seats.",
}


def _ops_table(table: str) -> dg.AssetsDefinition:
    spec = dg.AssetSpec(
        OPS_TABLES[table],
        group_name="sources",
        kinds={"sql"},
        owners=["team:data-platform"],
        description=f"{DESCRIPTIONS[table]} The `{table}` table of the operational database; "
        "its data version is a hash of its content.",
        # The schedule observes it every 10 minutes; this observes it at once on a new instance.
        automation_condition=dg.AutomationCondition.missing().newly_true(),
    )

    @dg.multi_observable_source_asset(specs=[spec], name=f"observe_ops_{table}")
    def _observe(ops_database: OpsDatabaseResource):
        frame = ops_db.read_table(ops_database.url, table)
        yield dg.ObserveResult(asset_key=spec.key, data_version=dg.DataVersion(ops_db.content_hash(frame)))

    return _observe


def _lake_table(table: str, source: dg.AssetsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=RAW_TABLES[table],
        deps=[source],
        group_name="lake",
        kinds={"parquet", "sql"},
        owners=["team:data-platform"],
        description=f"{DESCRIPTIONS[table]} A copy of the operational table in the lake.",
        automation_condition=dg.AutomationCondition.eager(),
    )
    def _copy(ops_database: OpsDatabaseResource, lake_store: StoreResource) -> dg.MaterializeResult:
        frame = ops_db.read_table(ops_database.url, table)
        path = lake_layout.table_path(table)
        store = lake_store.store()
        lake.write_table(store, path, frame)
        return dg.MaterializeResult(
            metadata={**table_metadata(frame), "lake_location": store.uri(path)},
            data_version=dg.DataVersion(ops_db.content_hash(frame)),
        )

    return _copy


ops_tables = [_ops_table(t) for t in REFERENCE_TABLES]
raw_reference_tables = [_lake_table(t, s) for t, s in zip(REFERENCE_TABLES, ops_tables, strict=False)]

observe_reference_tables = dg.ScheduleDefinition(
    name="observe_reference_tables",
    target=dg.AssetSelection.assets(*(t.key for t in ops_tables)),
    cron_schedule="*/10 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Looks at the operational database's reference tables every 10 minutes.",
)
