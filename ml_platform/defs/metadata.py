"""Metadata every materialization carries, in the shapes the Dagster UI knows how to show."""

import datetime as dt
import json
from collections.abc import Mapping

import dagster as dg
import polars as pl

from ml_platform.io.warehouse import committed_snapshot


def column_schema(frame: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()])


def table_metadata(frame: pl.DataFrame, row_count: int | None = None) -> dict:
    """Row count and column schema (``row_count`` when the frame is only a sample or schema).

    These are the standard keys of Dagster's TableMetadataSet (not exported by dagster
    1.13.27's top-level package), which the UI shows as the table's size and columns.
    """
    return {
        "dagster/row_count": frame.height if row_count is None else row_count,
        "dagster/column_schema": column_schema(frame),
    }


def json_rows(frame: pl.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts (dates and times as ISO text)."""
    return json.loads(frame.write_json())


def sample_rows(frame: pl.DataFrame, n: int = 5) -> dg.JsonMetadataValue:
    """A few rows as JSON, for a person to look at in the UI."""
    return dg.MetadataValue.json(json_rows(frame.head(n)))


def add_table_schema(
    context: dg.AssetExecutionContext,
    day: dt.date,
    frame: pl.DataFrame,
    asset_key: dg.AssetKey | None = None,
    lineage: dg.TableColumnLineage | None = None,
) -> None:
    """The table's columns (and their lineage) on the newest day's partition of the run only.

    The UI shows them with the asset's latest materialization; on every partition, a year's
    range run would write the same 7-15 KB 365 times into the event log, which costs time.
    """
    metadata = {"dagster/column_schema": column_schema(frame)}
    if lineage is not None:
        metadata["dagster/column_lineage"] = lineage
    add_daily_metadata(context, {day: metadata}, asset_key)


def add_daily_metadata(
    context: dg.AssetExecutionContext, per_day: Mapping[dt.date | str, Mapping], asset_key: dg.AssetKey | None = None
) -> None:
    """Each day's own figures (its rows, its files) on that day's partition of a range run.

    Without it, every partition of a range run carries the range's metadata: the UI's row
    count per partition would be the range's, and a year's run would store the year's
    per-day figures 365 times over.
    """
    for day, metadata in per_day.items():
        key = day if isinstance(day, str) else day.isoformat()
        context.add_asset_metadata(dict(metadata), asset_key=asset_key, partition_key=key)


SNAPSHOT_KEY = "ducklake_snapshot_id"


def snapshot_metadata(conn) -> dict:
    """``ducklake_snapshot_id``: the warehouse snapshot the step's last write committed, for time travel
    (``SELECT ... FROM core.fct_flights AT (VERSION => n)``); empty when the step wrote nothing."""
    snapshot = committed_snapshot(conn)
    return {} if snapshot is None else {SNAPSHOT_KEY: snapshot}
