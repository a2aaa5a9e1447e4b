"""The dead_letter table: every message the ingest could not turn into a good uplink."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    received_at: datetime
    source: str
    topic: str
    stage: str
    reason: str
    detail: str
    body: bytes
    dev_eui: str | None = None
    dedup_key: bytes | None = None


def insert_dead_letters(conn: psycopg.Connection, *, letters: Sequence[DeadLetterRow]) -> None:
    """Keep rejected messages with the reason they were rejected."""
    if not letters:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO dead_letter
                (received_at, source, topic, stage, reason, detail, body, dev_eui, dedup_key)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            [
                (
                    d.received_at,
                    d.source,
                    d.topic,
                    d.stage,
                    d.reason,
                    d.detail,
                    d.body,
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


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """A dead letter as the operator sees it; `body` only when asked for one."""

    id: int
    received_at: datetime
    source: str
    topic: str
    stage: str
    reason: str
    detail: str
    dev_eui: str | None
    body_length: int
    body: bytes | None


def list_dead_letters(
    conn: psycopg.Connection,
    *,
    stage: str | None = None,
    reason: str | None = None,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: int,
) -> list[StoredDeadLetter]:
    """List dead letters newest first (by id), filtered; `before` is the last id seen."""
    rows = conn.execute(
        """
        SELECT id, received_at, source, topic, stage, reason, detail, dev_eui,
               octet_length(body), NULL::bytea
        FROM dead_letter
        WHERE (%(stage)s::text IS NULL OR stage = %(stage)s)
          AND (%(reason)s::text IS NULL OR reason = %(reason)s)
          AND (%(source)s::text IS NULL OR source = %(source)s)
          AND (%(since)s::timestamptz IS NULL OR received_at >= %(since)s)
          AND (%(until)s::timestamptz IS NULL OR received_at < %(until)s)
          AND (%(before)s::bigint IS NULL OR id < %(before)s)
        ORDER BY id DESC
        LIMIT %(limit)s
        """,
        {
            "stage": stage,
            "reason": reason,
            "source": source,
            "since": since,
            "until": until,
            "before": before,
            "limit": limit,
        },
    ).fetchall()
    return [StoredDeadLetter(*row) for row in rows]


def get_dead_letter(conn: psycopg.Connection, *, letter_id: int) -> StoredDeadLetter | None:
    """Return one dead letter with its original bytes, or None."""
    row = conn.execute(
        """
        SELECT id, received_at, source, topic, stage, reason, detail, dev_eui,
               octet_length(body), body
        FROM dead_letter WHERE id = %s
        """,
        (letter_id,),
    ).fetchone()
    if row is None:
        return None
    (id_, at, source, topic, stage, reason, detail, dev_eui, length, body) = row
    return StoredDeadLetter(
        id_, at, source, topic, stage, reason, detail, dev_eui, length, bytes(body)
    )
