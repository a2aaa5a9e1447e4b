"""The usage ledger, the monthly quota counters and the idempotency keys of metered requests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

import psycopg


@dataclass(frozen=True, slots=True)
class IdempotencyRow:
    fingerprint: str
    request_id: UUID


def claim_idempotency_key(
    conn: psycopg.Connection, *, subject: str, key: str, fingerprint: str, request_id: UUID
) -> IdempotencyRow | None:
    """Claim `key` for this request; return the earlier claim if there is one, else None.

    A concurrent claim of the same key waits on the unique key until the first commits,
    then sees it: at most one request per key is ever counted.
    """
    row = conn.execute(
        """
        INSERT INTO idempotency_key (subject, key, fingerprint, request_id)
        VALUES (%s, %s, %s, %s)
        ON CONFLICT (subject, key) DO NOTHING
        RETURNING request_id
        """,
        (subject, key, fingerprint, request_id),
    ).fetchone()
    if row is not None:
        return None
    earlier = conn.execute(
        "SELECT fingerprint, request_id FROM idempotency_key WHERE subject = %s AND key = %s",
        (subject, key),
    ).fetchone()
    assert earlier is not None  # a conflicting row exists and rows are never deleted here
    return IdempotencyRow(*earlier)


def charge_quota(
    conn: psycopg.Connection, *, consumer_id: int, month: date, observations: int, quota: int
) -> int | None:
    """Add `observations` to the consumer's count for `month` unless it would pass `quota`.

    Return the new count, or None (nothing added) if it would pass. The conditional
    upsert holds the counter's row lock until commit, so concurrent requests are charged
    one after another and the count never passes the quota.
    """
    row = conn.execute(
        """
        INSERT INTO quota_usage AS q (consumer_id, month, observations)
        SELECT %(consumer_id)s, %(month)s, %(observations)s
        WHERE %(observations)s <= %(quota)s
        ON CONFLICT (consumer_id, month) DO UPDATE
            SET observations = q.observations + excluded.observations
            WHERE q.observations + excluded.observations <= %(quota)s
        RETURNING observations
        """,
        {"consumer_id": consumer_id, "month": month, "observations": observations, "quota": quota},
    ).fetchone()
    return row[0] if row is not None else None


def get_quota_used(conn: psycopg.Connection, *, consumer_id: int, month: date) -> int:
    """Return the observations charged to a consumer's quota in `month`."""
    row = conn.execute(
        "SELECT observations FROM quota_usage WHERE consumer_id = %s AND month = %s",
        (consumer_id, month),
    ).fetchone()
    return row[0] if row is not None else 0


def insert_usage(
    conn: psycopg.Connection,
    *,
    request_id: UUID,
    consumer_id: int | None,
    purpose: str,
    endpoint: str,
    observations: Mapping[int, int],
    occurred_at: datetime,
) -> int:
    """Record what one request served, one row per dataset (id -> observations > 0).

    The supplier is the dataset's. Return the rows written; a request id already
    recorded for a dataset is not recorded again.
    """
    counted = {dataset_id: n for dataset_id, n in observations.items() if n > 0}
    if not counted:
        return 0
    cur = conn.execute(
        """
        INSERT INTO usage (request_id, consumer_id, purpose, dataset_id, supplier_id, endpoint,
                           observations, occurred_at)
        SELECT %(request_id)s, %(consumer_id)s, %(purpose)s, ds.id, ds.supplier_id,
               %(endpoint)s, u.observations, %(occurred_at)s
        FROM unnest(%(dataset_ids)s::int[], %(observations)s::bigint[])
             AS u (dataset_id, observations)
        JOIN dataset ds ON ds.id = u.dataset_id
        ON CONFLICT (request_id, dataset_id) DO NOTHING
        """,
        {
            "request_id": request_id,
            "consumer_id": consumer_id,
            "purpose": purpose,
            "endpoint": endpoint,
            "dataset_ids": list(counted),
            "observations": list(counted.values()),
            "occurred_at": occurred_at,
        },
    )
    return cur.rowcount


def sum_usage(conn: psycopg.Connection, *, consumer_id: int | None = None) -> int:
    """Return the observations recorded, of one consumer or (None) of everyone."""
    row = conn.execute(
        """
        SELECT coalesce(sum(observations), 0)::bigint FROM usage
        WHERE %(consumer_id)s::int IS NULL OR consumer_id = %(consumer_id)s
        """,
        {"consumer_id": consumer_id},
    ).fetchone()
    assert row is not None
    return int(row[0])
