"""Stream ingestion: flight events through Kafka, exactly once into the lake.

* ``events``: what a flight event is; a real day's events, and back to its raw flights rows.
* ``broker``: the embedded Kafka-compatible broker (Tansu) on loopback, or a real Kafka;
  ``broker_storage`` keeps the embedded broker's log in a folder.
* ``producer``: replaying 2013 in simulated time.
* ``offset_log``: the lake layout, where the batch files' offset ranges record what was consumed.
* ``sink``: the service that writes the topic into the lake in micro-batches.
* ``day_events``: a day's events read back, and when a day is complete.
* ``latency``: produce-to-lake latency and throughput of a running sink.

Nothing here imports Dagster.
"""
