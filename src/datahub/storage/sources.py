"""The source table: the network-server feeds the ingest subscribes to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True, slots=True)
class SourceRow:
    name: str
    city: str
    format: str
    broker: str
    topic: str
    qos: int


def upsert_sources(conn: psycopg.Connection, *, sources: Sequence[SourceRow]) -> None:
    """Record the configured sources, so stored uplinks name a known source."""
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO source (name, city, format, broker, topic, qos, updated_at)
            VALUES (%s, %s, %s, %s, %s, %s, now())
            ON CONFLICT (name) DO UPDATE SET
                city = excluded.city, format = excluded.format, broker = excluded.broker,
                topic = excluded.topic, qos = excluded.qos, updated_at = now()
            """,
            [(s.name, s.city, s.format, s.broker, s.topic, s.qos) for s in sources],
        )
