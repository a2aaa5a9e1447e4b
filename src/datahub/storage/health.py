"""What the health checks ask the database."""

from __future__ import annotations

import psycopg


def get_extension_version(conn: psycopg.Connection, *, name: str) -> str | None:
    """Return the installed version of an extension, or None if it is not installed."""
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = %s", (name,)).fetchone()
    return row[0] if row is not None else None
