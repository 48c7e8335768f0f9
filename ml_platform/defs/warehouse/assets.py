"""The DuckLake warehouse: typed staging tables with row-level quarantine, dimensions and the fact.

Each step that writes a table runs in that table's pool (``defs/pools.py``, one step at a time
per pool, dagster.yaml), so steps writing different tables run side by side. Each load replaces
exactly its days in one transaction (one DuckLake snapshot, its id in the metadata as
``ducklake_snapshot_id``); a range is one statement.
"""

import dagster as dg
import polars as pl

from ml_platform.defs.automation import on_upstream_change
from ml_platform.defs.checks import (
    contract_result,
    contract_spec,
    threshold_result,
    threshold_spec,
)
from ml_platform.defs.keys import (
    DIMS,
    FCT_FLIGHTS,
    QUARANTINE_FLIGHTS,
    QUARANTINE_WEATHER,
    RAW_FLIGHTS,
    RAW_TABLES,
    RAW_WEATHER,
    STAGING_FLIGHTS,
    STAGING_WEATHER,
)
from ml_platform.defs.metadata import (
    add_daily_metadata,
    add_table_schema,
    column_schema,
    sample_rows,
    snapshot_metadata,
)
from ml_platform.defs.partitions import daily_partitions, day_range
from ml_platform.defs.pools import pool_for
from ml_platform.defs.resources import StoreResource, WarehouseResource
from ml_platform.domain import contracts
from ml_platform.io.warehouse import ident, table_name
from ml_platform.pipeline import warehouse as wh
from ml_platform.pipeline.warehouse.common import read_days, read_days_in_parts

SPEC = dict(group_name="warehouse", owners=["team:data-platform"])
PARTITIONED = dict(partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run())

DAILY_AUTOMATION = on_upstream_change(ignore=tuple(DIMS.values()))

ACCOUNTED = "every_row_accounted_for"
# Quality thresholds per day: above them the day is unusual and a person should look.
CANCELLED_SHARE_LIMIT = 0.10  # a normal day cancels ~2%; the 2013-02-08 blizzard cancelled half
NO_PLANE_SHARE_LIMIT = 0.20  # ~15% of 2013 flights carry fleet numbers unknown to the planes table
IMPUTED_SHARE_LIMIT = 0.05


def _lineage(deps: dict[str, list[tuple[dg.AssetKey | str, str]]]) -> dg.TableColumnLineage:
    return dg.TableColumnLineage(
        deps_by_column={
            column: [dg.TableColumnDep(dg.AssetKey.from_coercible(a), c) for a, c in sources]
            for column, sources in deps.items()
        }
    )


RAW = RAW_FLIGHTS
STAGING_FLIGHTS_LINEAGE = _lineage(
    {
        "flight_date": [(RAW, "year"), (RAW, "month"), (RAW, "day")],
        "sched_dep_utc": [(RAW, "sched_dep_time"), (DIMS["airports"], "tzone")],
        "actual_dep_utc": [(RAW, "sched_dep_time"), (RAW, "dep_delay")],
        "sched_arr_utc": [(RAW, "sched_arr_time"), (DIMS["airports"], "tzone")],
        "actual_arr_utc": [(RAW, "sched_arr_time"), (RAW, "arr_delay")],
        "is_cancelled": [(RAW, "dep_time")],
        "is_diverted": [(RAW, "dep_time"), (RAW, "arr_delay")],
    }
)
FCT_FLIGHTS_LINEAGE = _lineage(
    {
        "carrier_name": [(DIMS["carriers"], "name")],
        "origin_tzone": [(DIMS["airports"], "tzone")],
        "dest_tzone": [(DIMS["airports"], "tzone")],
        "plane_year": [(DIMS["planes"], "year")],
        "seats": [(DIMS["planes"], "seats")],
        "has_plane": [(DIMS["planes"], "tailnum")],
        "is_delayed": [(STAGING_FLIGHTS, "arr_delay")],
    }
)


def _accounted_spec(asset: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        ACCOUNTED,
        asset=asset,
        blocking=True,
        description="Rows in the delivered files (their lines, counted without a CSV parser) = rows read = "
        "loaded + quarantined, and no day lost every row.",
    )


def _accounted_result(asset: dg.AssetKey, result: wh.LoadResult) -> dg.AssetCheckResult:
    """Input rows = loaded + quarantined on every day, and no day lost all its rows."""
    unbalanced = [
        f"{d} (the files' lines {c.source_rows}, read {c.input_rows}, loaded {c.loaded_rows} + quarantined "
        f"{c.quarantined_rows})"
        for d, c in result.days.items()
        if not c.balanced
    ]
    all_rejected = [d.isoformat() for d, c in result.days.items() if c.input_rows and not c.loaded_rows]
    problems = []
    if unbalanced:
        problems.append(f"rows unaccounted for on {', '.join(unbalanced)}")
    if all_rejected:
        rules = result.total.quarantined
        problems.append(f"every row quarantined on {', '.join(all_rejected)} (rules: {dict(rules)})")
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=ACCOUNTED,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems) or None,
        metadata={"per_day": dg.MetadataValue.json({d.isoformat(): c.to_dict() for d, c in result.days.items()})},
    )


def _add_daily_counts(
    context: dg.AssetExecutionContext, result: wh.LoadResult, asset: dg.AssetKey, quarantine: dg.AssetKey | None = None
) -> None:
    """Each day's partition gets that day's counts (rows in the table, input, quarantined)."""
    add_daily_metadata(
        context,
        {
            day: {
                "dagster/row_count": c.loaded_rows + c.added_rows,
                "input_rows": c.input_rows,
                "loaded_rows": c.loaded_rows,
                "quarantined_rows": c.quarantined_rows,
            }
            for day, c in result.days.items()
        },
        asset,
    )
    if quarantine is not None:
        add_daily_metadata(
            context, {d: {"dagster/row_count": c.quarantined_rows} for d, c in result.days.items()}, quarantine
        )


def _load_metadata(result: wh.LoadResult) -> dict:
    """The range's counts."""
    total = result.total
    return {
        "dagster/row_count": total.loaded_rows + total.added_rows,
        "input_rows": total.input_rows,
        "loaded_rows": total.loaded_rows,
        "quarantined_rows": total.quarantined_rows,
        "quarantined_by_rule": dg.MetadataValue.json(dict(sorted(total.quarantined.items()))),
        "added_columns": list(result.added_columns),
        "load_seconds": round(result.seconds, 2),
    }


def _share_per_day(conn, table: str, date_column: str, condition: str, first, last) -> pl.DataFrame:
    """``day``, ``share``: the share of each day's rows of ``table`` where ``condition`` (a constant of
    this module, never user input) holds, by day."""
    column = ident(date_column)
    return conn.execute(
        f"SELECT {column} AS day, avg(CAST({condition} AS DOUBLE)) AS share FROM {table_name(table)} "
        f"WHERE {column} BETWEEN $first AND $last GROUP BY ALL ORDER BY day",
        {"first": first, "last": last},
    ).pl()


def _worst_day(asset: dg.AssetKey, name: str, share: pl.DataFrame, limit: float, **metadata) -> dg.AssetCheckResult:
    """WARN when the day with the highest share is above ``limit``."""
    worst = share.sort("share").tail(1)
    return threshold_result(
        asset,
        name,
        float(worst["share"][0]) if worst.height else 0.0,
        limit,
        worst_day=str(worst["day"][0]) if worst.height else None,
        **metadata,
    )


def _dimension(name: str, raw_key: dg.AssetKey, loader, model_doc: str) -> dg.AssetsDefinition:
    table = table_name(f"core.dim_{name}")

    @dg.asset(
        key=DIMS[name],
        deps=[raw_key],
        kinds={"duckdb"},
        automation_condition=dg.AutomationCondition.eager(),
        description=model_doc,
        pool=pool_for(DIMS[name]),
        **SPEC,
    )
    def _dim(warehouse: WarehouseResource, lake_store: StoreResource) -> dg.MaterializeResult:
        with warehouse.connect(lake_store.url) as conn:
            counts = loader(conn, lake_store.url)
            frame = conn.execute(f"SELECT * FROM {table}").pl()
            snapshot = snapshot_metadata(conn)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": frame.height,
                "dagster/column_schema": column_schema(frame),
                **counts.to_dict(),
                **snapshot,
            }
        )

    return _dim


dim_carriers = _dimension("carriers", RAW_TABLES["airlines"], wh.load_dim_carriers, "Airlines by carrier code.")
dim_airports = _dimension(
    "airports",
    RAW_TABLES["airports"],
    wh.load_dim_airports,
    "Airports by FAA code with their time zone, including a versioned supplement for the four "
    "Caribbean destinations (SJU, BQN, STT, PSE) missing from the reference table.",
)
dim_planes = _dimension("planes", RAW_TABLES["planes"], wh.load_dim_planes, "Planes by tail number.")


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            STAGING_FLIGHTS,
            deps=[RAW_FLIGHTS, DIMS["airports"], DIMS["carriers"]],
            kinds={"duckdb"},
            automation_condition=DAILY_AUTOMATION,
            **SPEC,
            description="Every reported flight, typed and placed in time: scheduled and actual "
            "departure and arrival in local and UTC time, cancelled and diverted flags, one row "
            "per flight (date, carrier, flight number, origin, scheduled departure).",
        ),
        dg.AssetSpec(
            QUARANTINE_FLIGHTS,
            deps=[RAW_FLIGHTS, DIMS["airports"], DIMS["carriers"]],
            kinds={"duckdb"},
            automation_condition=DAILY_AUTOMATION,
            **SPEC,
            description="Flight rows that broke the staging contract, with the rule that failed, "
            "the source file and line, and the raw values. Nothing is lost.",
        ),
    ],
    check_specs=[
        contract_spec(STAGING_FLIGHTS, contracts.StagingFlights),
        _accounted_spec(STAGING_FLIGHTS),
        threshold_spec(STAGING_FLIGHTS, "cancelled_share", "Share of cancelled flights per day."),
    ],
    pool=pool_for(STAGING_FLIGHTS),  # quarantine.flights is written in the same transaction
    **PARTITIONED,
)
def staging_flights(context: dg.AssetExecutionContext, warehouse: WarehouseResource, lake_store: StoreResource):
    first, last = day_range(context)
    with warehouse.connect(lake_store.url) as conn:
        result = wh.load_staging_flights(conn, lake_store.url, first, last)
        snapshot = snapshot_metadata(conn)
        contract = contract_result(
            STAGING_FLIGHTS,
            contracts.StagingFlights,
            read_days_in_parts(conn, "staging.flights", "flight_date", first, last),
        )
        columns = read_days(conn, "staging.flights", "flight_date", first, last, limit=0)
        quarantined = read_days(conn, "quarantine.flights", "flight_date", first, last, limit=5)
        cancelled = _share_per_day(conn, "staging.flights", "flight_date", "is_cancelled", first, last)
    context.log.info("staging.flights %s..%s: %s", first, last, result.total.to_dict())
    _add_daily_counts(context, result, STAGING_FLIGHTS, QUARANTINE_FLIGHTS)
    add_table_schema(context, last, columns, STAGING_FLIGHTS, STAGING_FLIGHTS_LINEAGE)
    yield dg.MaterializeResult(asset_key=STAGING_FLIGHTS, metadata={**_load_metadata(result), **snapshot})
    yield dg.MaterializeResult(
        asset_key=QUARANTINE_FLIGHTS,
        metadata={
            "dagster/row_count": result.total.quarantined_rows,
            "by_rule": dg.MetadataValue.json(dict(sorted(result.total.quarantined.items()))),
            "sample": sample_rows(quarantined),
            **snapshot,
        },
    )
    yield contract
    yield _accounted_result(STAGING_FLIGHTS, result)
    yield _worst_day(STAGING_FLIGHTS, "cancelled_share", cancelled, CANCELLED_SHARE_LIMIT)


@dg.asset(
    key=FCT_FLIGHTS,
    deps=[STAGING_FLIGHTS, *DIMS.values()],
    kinds={"duckdb"},
    automation_condition=DAILY_AUTOMATION,
    check_specs=[
        contract_spec(FCT_FLIGHTS, contracts.FctFlights),
        threshold_spec(
            FCT_FLIGHTS,
            "flights_without_plane",
            "Share of flights whose tail number is not in the planes table (kept, flagged has_plane = false).",
        ),
    ],
    pool=pool_for(FCT_FLIGHTS),
    **SPEC,
    **PARTITIONED,
)
def fct_flights(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """One row per flight with its airline, airports and plane, and the label `is_delayed`
    (arrival more than 15 minutes late; empty for cancelled and diverted flights). Flights
    whose plane is unknown stay, with empty plane columns and `has_plane` false."""
    first, last = day_range(context)
    with warehouse.connect() as conn:
        result = wh.load_fct_flights(conn, first, last)
        snapshot = snapshot_metadata(conn)
        contract = contract_result(
            FCT_FLIGHTS, contracts.FctFlights, read_days_in_parts(conn, "core.fct_flights", "flight_date", first, last)
        )
        columns = read_days(conn, "core.fct_flights", "flight_date", first, last, limit=0)
        no_plane = _share_per_day(conn, "core.fct_flights", "flight_date", "NOT has_plane", first, last)
    _add_daily_counts(context, result, FCT_FLIGHTS)
    add_table_schema(context, last, columns, lineage=FCT_FLIGHTS_LINEAGE)
    yield dg.MaterializeResult(metadata={**_load_metadata(result), **snapshot})
    yield contract
    yield _worst_day(
        FCT_FLIGHTS,
        "flights_without_plane",
        no_plane,
        NO_PLANE_SHARE_LIMIT,
        share_per_day=dg.MetadataValue.json({str(d): round(s, 4) for d, s in no_plane.iter_rows()}),
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            STAGING_WEATHER,
            deps=[RAW_WEATHER],
            kinds={"duckdb"},
            automation_condition=DAILY_AUTOMATION,
            **SPEC,
            description="One weather report per airport and UTC hour, with the time it became "
            "known (51 minutes past the hour). Gaps of up to 3 hours are filled (using the "
            "neighbouring days when they are in the lake) and flagged is_imputed; impossible "
            "values are emptied and flagged. The reference data ends 2013-12-30 18:00 New York time.",
        ),
        dg.AssetSpec(
            QUARANTINE_WEATHER,
            deps=[RAW_WEATHER],
            kinds={"duckdb"},
            automation_condition=DAILY_AUTOMATION,
            **SPEC,
            description="Weather rows that broke the contract, with the rule and raw values.",
        ),
    ],
    check_specs=[
        contract_spec(STAGING_WEATHER, contracts.StagingWeather),
        _accounted_spec(STAGING_WEATHER),
        threshold_spec(STAGING_WEATHER, "imputed_share", "Share of weather hours filled by imputation."),
    ],
    pool=pool_for(STAGING_WEATHER),  # quarantine.weather is written in the same transaction
    **PARTITIONED,
)
def staging_weather(context: dg.AssetExecutionContext, warehouse: WarehouseResource, lake_store: StoreResource):
    first, last = day_range(context)
    with warehouse.connect(lake_store.url) as conn:
        result = wh.load_staging_weather(conn, lake_store.url, first, last)
        snapshot = snapshot_metadata(conn)
        frame = read_days(conn, "staging.weather", "weather_date", first, last)
        quarantined = read_days(conn, "quarantine.weather", "weather_date", first, last)
    _add_daily_counts(context, result, STAGING_WEATHER, QUARANTINE_WEATHER)
    add_table_schema(context, last, frame, STAGING_WEATHER)
    yield dg.MaterializeResult(
        asset_key=STAGING_WEATHER,
        metadata={
            **_load_metadata(result),
            "dagster/row_count": frame.height,
            "imputed_rows": result.total.added_rows,
            **snapshot,
        },
    )
    yield dg.MaterializeResult(
        asset_key=QUARANTINE_WEATHER,
        metadata={
            "dagster/row_count": quarantined.height,
            "sample": sample_rows(quarantined),
            **snapshot,
        },
    )
    yield contract_result(STAGING_WEATHER, contracts.StagingWeather, frame)
    yield _accounted_result(STAGING_WEATHER, result)
    share = float(frame["is_imputed"].mean()) if frame.height else 0.0
    yield threshold_result(STAGING_WEATHER, "imputed_share", share, IMPUTED_SHARE_LIMIT)
