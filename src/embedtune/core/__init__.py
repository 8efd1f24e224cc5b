"""Infrastructure the features share: settings, database, errors, queue, artifact storage,
request guards and limits, wire rules, ids and pagination, process telemetry."""
