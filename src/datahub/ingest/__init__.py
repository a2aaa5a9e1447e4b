"""Ingest flow: MQTT → envelope → decode → normalize → store, chained by the pipeline."""
