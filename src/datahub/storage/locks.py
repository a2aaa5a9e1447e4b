"""Advisory locks that let one of several ingest workers do a periodic job at a time."""

from __future__ import annotations

import psycopg

# Keys of pg_advisory_xact_lock; storage/rollups.py's REFRESH_LOCK is 0x726F6C6C7570.
HEALTH_REFRESH = 0x6865616C7468  # "health"
ALERT_SCHEDULER = 0x616C65727473  # "alerts"


def try_lock(conn: psycopg.Connection, key: int) -> bool:
    """Take a transaction-level advisory lock if free; tell whether it was taken."""
    row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])
