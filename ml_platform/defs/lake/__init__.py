"""The lake layer: raw, immutable copies of every source."""

import dagster as dg

from ml_platform.defs.lake.flights import landing_flights, raw_flights
from ml_platform.defs.lake.landing_sensor import ingest_landing_job, landing_sensor
from ml_platform.defs.lake.reference import observe_reference_tables, ops_tables, raw_reference_tables
from ml_platform.defs.lake.stream import ingest_stream_job, kafka_flight_events, raw_flight_events, stream_sensor
from ml_platform.defs.lake.weather import raw_weather, weather_api


def definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[
            landing_flights,
            kafka_flight_events,
            weather_api,
            *ops_tables,
            raw_flights,
            raw_flight_events,
            raw_weather,
            *raw_reference_tables,
        ],
        jobs=[ingest_landing_job, ingest_stream_job],
        sensors=[landing_sensor, stream_sensor],
        schedules=[observe_reference_tables],
    )
