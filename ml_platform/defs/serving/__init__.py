"""The serving layer: each day's flight features pushed to the online store (Redis) for the
prediction service (``ml-platform serve``), which answers in milliseconds."""

import dagster as dg

from ml_platform.defs.automation import on_upstream_change
from ml_platform.defs.keys import FCT_FLIGHTS, FEATURES, ONLINE_FEATURES
from ml_platform.defs.partitions import daily_partitions, day_range
from ml_platform.defs.resources import OnlineStoreResource, WarehouseResource
from ml_platform.serving.online_store import FlightSelection, OnlineStoreUnavailable, push_flight_features


@dg.asset(
    key=ONLINE_FEATURES,
    deps=[FEATURES, FCT_FLIGHTS],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    automation_condition=on_upstream_change(),
    group_name="serving",
    kinds={"redis"},
    owners=["team:ml"],
)
def online_flight_features(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, online_store: OnlineStoreResource
) -> dg.MaterializeResult:
    """Each flight's features, as the offline table has them, in Redis for the prediction service: one
    packed value per flight with the `known_at` of every family, and the airport state they were built
    from, kept for the TTL. Its metadata says how many, how fresh and for how long."""
    first, last = day_range(context)
    try:
        with warehouse.connect() as conn:  # reads only: no pool
            result = push_flight_features(online_store.store(), conn, FlightSelection.days(first, last))
    except OnlineStoreUnavailable as e:
        raise dg.Failure(description=f"The online store is unreachable, nothing pushed: {e}") from e
    context.log.info("pushed %d flights of %s..%s", result.flights, first, last)
    return dg.MaterializeResult(metadata=result.metadata())


def definitions() -> dg.Definitions:
    return dg.Definitions(assets=[online_flight_features])
