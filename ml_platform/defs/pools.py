"""Which Dagster pool a step that writes a warehouse table runs in: one pool per table (limits in dagster.yaml).

Two steps writing the same table never run at once, in any profile: DuckLake 1.5.5 lets two
transactions that each DELETE a day with no rows yet and INSERT it both commit, which leaves the
day twice (ducklake#1393), and two concurrent reloads of days in one table conflict at commit.
Steps writing different tables run side by side (their commits compete only for the snapshot id,
which DuckLake retries). Readers need no pool: they read a committed snapshot.

A step that writes two tables (``staging_flights`` writes ``staging.flights`` and
``quarantine.flights`` in one transaction) takes the pool of its main table. A step has one pool,
and no other step writes the second table, so serializing the main table's writers serializes
the second table's too; a pool of its own would never be contended.
"""

import dagster as dg

from ml_platform.defs.keys import (
    DIMS,
    FCT_FLIGHTS,
    FEATURES,
    PERFORMANCE,
    PREDICTIONS,
    QUARANTINE_FLIGHTS,
    QUARANTINE_WEATHER,
    STAGING_FLIGHTS,
    STAGING_WEATHER,
)

# The table each asset writes (its main one for a multi-asset: see the module docstring).
TABLES: dict[dg.AssetKey, str] = {
    **{key: f"core.dim_{name}" for name, key in DIMS.items()},  # with quarantine.dim_<name>
    STAGING_FLIGHTS: "staging.flights",
    QUARANTINE_FLIGHTS: "staging.flights",
    STAGING_WEATHER: "staging.weather",
    QUARANTINE_WEATHER: "staging.weather",
    FCT_FLIGHTS: "core.fct_flights",
    FEATURES: "features.flight_features",
    PREDICTIONS: "ml.predictions",
    PERFORMANCE: "ml.model_performance",
}
# The tables each pool's writers write: what its maintenance step may compact.
WRITTEN_TABLES: dict[str, tuple[str, ...]] = {
    **{f"core.dim_{name}": (f"core.dim_{name}", f"quarantine.dim_{name}") for name in DIMS},
    "staging.flights": ("staging.flights", "quarantine.flights"),
    "staging.weather": ("staging.weather", "quarantine.weather"),
    "core.fct_flights": ("core.fct_flights",),
    "features.flight_features": ("features.flight_features",),
    "ml.predictions": ("ml.predictions",),
    "ml.model_performance": ("ml.model_performance",),
}
# Expiring snapshots and deleting old files is one step for the whole catalog, never two at once.
CATALOG_MAINTENANCE = "warehouse:catalog"


def pool_of_table(table: str) -> str:
    """``warehouse:staging.flights``: the pool of the steps that write ``table``."""
    return f"warehouse:{table}"


def pool_for(asset: dg.AssetKey) -> str:
    """The pool of the step that writes ``asset``'s table."""
    try:
        return pool_of_table(TABLES[asset])
    except KeyError:
        raise KeyError(f"{asset.to_user_string()} writes no warehouse table (ml_platform/defs/pools.py)") from None


def all_pools() -> list[str]:
    """Every table pool, and the catalog's (what dagster.yaml's default limit applies to)."""
    return [*(pool_of_table(t) for t in WRITTEN_TABLES), CATALOG_MAINTENANCE]
