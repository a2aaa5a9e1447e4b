"""The audit_log table: appended under a lock, read in chain order, never changed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

# Key of the pg_advisory_xact_lock that serialises appends ("audit"), so that two
# transactions never chain an entry to the same predecessor.
CHAIN_LOCK = 0x6175646974
GENESIS = bytes(32)  # the predecessor's hash of the first entry


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One audit entry as stored."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    before: Any
    after: Any
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class Head:
    """The chain's last entry (seq 0 and GENESIS when empty) and the time under the lock."""

    seq: int
    hash: bytes
    now: datetime


def lock_head(conn: psycopg.Connection) -> Head:
    """Take the chain's lock until the transaction ends; return its head and the time."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (CHAIN_LOCK,))
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS:
        # In autocommit outside a transaction the lock is gone already, and the change
        # could commit without its entry.
        raise RuntimeError("an audit entry is appended inside the transaction of its change")
    row = conn.execute(
        """
        SELECT coalesce(max(seq), 0),
               coalesce((SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1), %s),
               clock_timestamp()
        FROM audit_log
        """,
        (GENESIS,),
    ).fetchone()
    assert row is not None
    return Head(int(row[0]), bytes(row[1]), row[2])


def insert_entry(conn: psycopg.Connection, *, entry: StoredEntry) -> None:
    """Append one entry (its seq and hashes computed by the caller under the lock)."""
    conn.execute(
        """
        INSERT INTO audit_log (seq, at, actor, action, target, before, after, prev_hash, hash)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            entry.seq,
            entry.at,
            entry.actor,
            entry.action,
            entry.target,
            None if entry.before is None else Jsonb(entry.before),
            None if entry.after is None else Jsonb(entry.after),
            entry.prev_hash,
            entry.hash,
        ),
    )


_COLUMNS = "seq, at, actor, action, target, before, after, prev_hash, hash"


def _entry(row: tuple[Any, ...]) -> StoredEntry:
    seq, at, actor, action, target, before, after, prev_hash, hash_ = row
    return StoredEntry(
        seq, at, actor, action, target, before, after, bytes(prev_hash), bytes(hash_)
    )


def get_entry(conn: psycopg.Connection, *, seq: int) -> StoredEntry | None:
    """Return one entry by its number, or None."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM audit_log WHERE seq = %s", (seq,)).fetchone()
    return _entry(row) if row is not None else None


def list_entries(
    conn: psycopg.Connection,
    *,
    after: int = 0,
    limit: int,
    action: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    newest_first: bool = False,
) -> list[StoredEntry]:
    """List entries in chain order (or newest first) past `after` (below it, newest first),
    filtered by action (or its prefix `supplier.`), target and actor."""
    order = "DESC" if newest_first else "ASC"
    rows = conn.execute(
        f"""
        SELECT {_COLUMNS} FROM audit_log
        WHERE (CASE WHEN %(newest)s THEN (%(after)s = 0 OR seq < %(after)s)
                    ELSE seq > %(after)s END)
          AND (%(action)s::text IS NULL OR action = %(action)s
               OR (right(%(action)s, 1) = '.' AND starts_with(action, %(action)s)))
          AND (%(target)s::text IS NULL OR target = %(target)s)
          AND (%(actor)s::text IS NULL OR actor = %(actor)s)
        ORDER BY seq {order}
        LIMIT %(limit)s
        """,
        {
            "newest": newest_first,
            "after": after,
            "action": action,
            "target": target,
            "actor": actor,
            "limit": limit,
        },
    ).fetchall()
    return [_entry(row) for row in rows]


def iterate_entries(conn: psycopg.Connection, *, batch: int = 1000) -> Iterator[StoredEntry]:
    """Yield every entry in the order of the table's rows by seq, a batch at a time."""
    after: int | None = None
    while True:
        rows = conn.execute(
            f"""
            SELECT {_COLUMNS} FROM audit_log
            WHERE %(after)s::bigint IS NULL OR seq > %(after)s
            ORDER BY seq LIMIT %(limit)s
            """,
            {"after": after, "limit": batch},
        ).fetchall()
        if not rows:
            return
        for row in rows:
            yield _entry(row)
        after = rows[-1][0]


def count_entries(conn: psycopg.Connection) -> int:
    """Return how many entries the log holds."""
    row = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    assert row is not None
    return int(row[0])
