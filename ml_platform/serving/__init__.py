"""Online serving: features in Redis (``online_store``) and the prediction service (``service``).

    store = OnlineStore(OnlineStoreSettings("redis://127.0.0.1:6379/0", key_prefix_for_home(home)))
    push_flight_features(store, conn, FlightSelection.days(first, last))   # the Dagster asset's body
    store.record_events([DepartureEvent(...)])                             # the stream consumer's call
    serve(ServiceSettings(online=..., tracking_uri=..., lake_url=...))      # ml-platform serve

No Dagster imports here; the asset and the CLI wire these in.
"""
