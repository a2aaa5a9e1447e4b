"""The dead_letter table: every message the ingest could not turn into a good uplink."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """A dead letter as the operator sees it; `body` (the stored head) only when asked for
    one. `body_length` and `body_sha256` are of the whole message."""

    id: int
    received_at: datetime
    source: str
    topic: str
    stage: str
    reason: str
    detail: str
    dev_eui: str | None
    body_length: int
    body_sha256: bytes
    head_length: int  # bytes of the message kept: body_length when it is kept whole
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
               body_length, body_sha256, octet_length(body), NULL::bytea
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
    return [_stored(row) for row in rows]


def get_dead_letter(conn: psycopg.Connection, *, letter_id: int) -> StoredDeadLetter | None:
    """Return one dead letter with its original bytes, or None."""
    row = conn.execute(
        """
        SELECT id, received_at, source, topic, stage, reason, detail, dev_eui,
               body_length, body_sha256, octet_length(body), body
        FROM dead_letter WHERE id = %s
        """,
        (letter_id,),
    ).fetchone()
    if row is None:
        return None
    return _stored(row)


def _stored(row: tuple[Any, ...]) -> StoredDeadLetter:
    (id_, at, source, topic, stage, reason, detail, dev_eui, length, sha, kept, body) = row
    return StoredDeadLetter(
        id_,
        at,
        source,
        topic,
        stage,
        reason,
        detail,
        dev_eui,
        length,
        bytes(sha),
        kept,
        None if body is None else bytes(body),
    )
