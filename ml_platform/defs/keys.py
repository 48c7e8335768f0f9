"""Every asset key of the platform, each prefixed by its layer (the asset group it lives in).

The warehouse keys name the table they hold (``warehouse/staging_flights`` is
``staging.flights``); the UI shows the last part as the node's name, so each says which is which.
"""

import dagster as dg

from ml_platform.domain.flights import REFERENCE_TABLES

# sources: outside the platform, watched or observed
LANDING_FLIGHTS = dg.AssetKey(["sources", "landing_flights"])
WEATHER_API = dg.AssetKey(["sources", "weather_api"])
KAFKA_FLIGHT_EVENTS = dg.AssetKey(["sources", "kafka_flight_events"])
OPS_TABLES = {t: dg.AssetKey(["sources", f"ops_{t}"]) for t in REFERENCE_TABLES}

# lake: raw, immutable copies
RAW_FLIGHTS = dg.AssetKey(["lake", "raw_flights"])
RAW_WEATHER = dg.AssetKey(["lake", "raw_weather"])
RAW_FLIGHT_EVENTS = dg.AssetKey(["lake", "raw_flight_events"])
RAW_TABLES = {t: dg.AssetKey(["lake", f"raw_{t}"]) for t in REFERENCE_TABLES}

# warehouse: one key per table
STAGING_FLIGHTS = dg.AssetKey(["warehouse", "staging_flights"])
QUARANTINE_FLIGHTS = dg.AssetKey(["warehouse", "quarantine_flights"])
STAGING_WEATHER = dg.AssetKey(["warehouse", "staging_weather"])
QUARANTINE_WEATHER = dg.AssetKey(["warehouse", "quarantine_weather"])
DIMS = {name: dg.AssetKey(["warehouse", f"dim_{name}"]) for name in ("carriers", "airports", "planes")}
FCT_FLIGHTS = dg.AssetKey(["warehouse", "fct_flights"])
# the nightly compaction and snapshot expiry of every warehouse table (no table of its own)
WAREHOUSE_MAINTENANCE = dg.AssetKey(["warehouse", "maintenance"])

# features
FEATURES = dg.AssetKey(["features", "flight_features"])
TRAINING_SET = dg.AssetKey(["features", "training_set"])

# models
MODEL = dg.AssetKey(["models", "flight_delay_model"])
CHAMPION = dg.AssetKey(["models", "champion"])
PREDICTIONS = dg.AssetKey(["models", "predictions"])
PERFORMANCE = dg.AssetKey(["models", "model_performance"])

# serving
ONLINE_FEATURES = dg.AssetKey(["serving", "online_flight_features"])
