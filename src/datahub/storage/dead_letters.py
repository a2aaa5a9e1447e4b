"""The dead_letter table: every message the ingest could not turn into a good uplink."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """A rejected message, whole; the table keeps a bounded head of `body`."""

    received_at: datetime
    source: str
    topic: str
    stage: str
    reason: str
    detail: str
    body: bytes
    dev_eui: str | None = None
    dedup_key: bytes | None = None


def insert_dead_letters(
    conn: psycopg.Connection, *, letters: Sequence[DeadLetterRow], head_bytes: int
) -> None:
    """Keep rejected messages with the reason they were rejected.

    Of each body the first `head_bytes` are kept, with the whole body's length and SHA-256:
    enough to read what went wrong and to recognise the message, while a flood of large
    messages cannot fill the database.
    """
    if not letters:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO dead_letter
                (received_at, source, topic, stage, reason, detail, body, body_length,
                 body_sha256, dev_eui, dedup_key)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            [
                (
                    d.received_at,
                    d.source,
                    d.topic,
                    d.stage,
                    d.reason,
                    d.detail,
                    d.body[:head_bytes],
                    len(d.body),
                    hashlib.sha256(d.body).digest(),
                    d.dev_eui,
                    d.dedup_key,
                )
                for d in letters
            ],
        )


def count_dead_letters(conn: psycopg.Connection) -> dict[str, int]:
    """Count dead letters by reason."""
    rows = conn.execute("SELECT reason, count(*) FROM dead_letter GROUP BY reason").fetchall()
    return {reason: count for reason, count in rows}
