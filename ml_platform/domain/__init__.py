"""The facts of the reference domain, each defined once: time, flights, weather, the lake's layout,
the contracts of published tables and the feature columns. Nothing here touches a file or a server."""
