"""The OGC SensorThings API (read-only) over the hub's data; see docs/sensorthings.md."""
