"""The usage ledger, the monthly counters of consumers' usage and the idempotency keys of
metered requests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb


@dataclass(frozen=True, slots=True)
class Answer:
    """A response as it was sent: status, headers (name, value) and body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class IdempotencyRow:
    """An idempotency key's claim: the request that made it and the answer it got."""

    fingerprint: str
    request_id: UUID
    answer: Answer


def _row(row: tuple[Any, ...]) -> IdempotencyRow:
    fingerprint, request_id, status, headers, body = row
    return IdempotencyRow(
        fingerprint, request_id, Answer(status, [(n, v) for n, v in headers], bytes(body))
    )


def find_idempotency_key(
    conn: psycopg.Connection, *, subject: str, key: str, kept_since: datetime
) -> IdempotencyRow | None:
    """Return the claim of `key` by `subject` made since `kept_since`, or None."""
    row = conn.execute(
        """
        SELECT fingerprint, request_id, status, headers, body FROM idempotency_key
        WHERE subject = %s AND key = %s AND created_at >= %s
        """,
        (subject, key, kept_since),
    ).fetchone()
    return _row(row) if row is not None else None


def claim_idempotency_key(
    conn: psycopg.Connection,
    *,
    subject: str,
    key: str,
    fingerprint: str,
    request_id: UUID,
    answer: Answer,
    now: datetime,
    kept_since: datetime,
) -> IdempotencyRow | None:
    """Claim `key` for this request and its answer; return the earlier claim if there is
    one, else None. A claim made before `kept_since` has expired and is taken over.

    A concurrent claim of the same key waits on the unique key until the first commits,
    then sees it: at most one request per key is ever counted.
    """
    row = conn.execute(
        """
        INSERT INTO idempotency_key AS k
            (subject, key, fingerprint, request_id, created_at, status, headers, body)
        VALUES (%(subject)s, %(key)s, %(fingerprint)s, %(request_id)s, %(now)s, %(status)s,
                %(headers)s, %(body)s)
        ON CONFLICT (subject, key) DO UPDATE
            SET fingerprint = excluded.fingerprint, request_id = excluded.request_id,
                created_at = excluded.created_at, status = excluded.status,
                headers = excluded.headers, body = excluded.body
            WHERE k.created_at < %(kept_since)s
        RETURNING request_id
        """,
        {
            "subject": subject,
            "key": key,
            "fingerprint": fingerprint,
            "request_id": request_id,
            "now": now,
            "status": answer.status,
            "headers": Jsonb([list(h) for h in answer.headers]),
            "body": answer.body,
            "kept_since": kept_since,
        },
    ).fetchone()
    if row is not None:
        return None
    earlier = conn.execute(
        """
        SELECT fingerprint, request_id, status, headers, body FROM idempotency_key
        WHERE subject = %s AND key = %s
        """,
        (subject, key),
    ).fetchone()
    assert earlier is not None  # a live claim conflicted, and this transaction holds its lock
    return _row(earlier)


def prune_idempotency_keys(conn: psycopg.Connection, *, kept_since: datetime) -> int:
    """Delete the claims made before `kept_since`; return how many."""
    return conn.execute("DELETE FROM idempotency_key WHERE created_at < %s", (kept_since,)).rowcount


@dataclass(frozen=True, slots=True)
class Charge:
    """What charging one request did: its usage recorded, or refused whole by the quota."""

    recorded: bool
    quota: int | None  # the consumer's monthly quota when it was charged; None: none


# The month of a usage row: its calendar month in UTC, as a date (the first day).
_MONTH = "date_trunc('month', {time} AT TIME ZONE 'UTC')::date"


@dataclass(frozen=True, slots=True)
class Usage:
    """What one request served, to be charged: observations per dataset id."""

    request_id: UUID
    consumer_id: int | None  # None: an anonymous caller, which has no counter and no quota
    purpose: str
    endpoint: str
    observations: Mapping[int, int]
    occurred_at: datetime

    @property
    def total(self) -> int:
        """The observations it served, all datasets together."""
        return sum(n for n in self.observations.values() if n > 0)


# The usage of many requests, charged in one statement: one row per request and dataset
# (the supplier is the dataset's; a request id recorded for a dataset is not recorded
# again), and each consumer's requests counted for their month, all of them or none.
#
# A consumer's usage is counted for its month in the same statement, always, so that the
# counter equals the month's ledger whether or not a quota is set. The quota is read from
# `consumer` at the charge, not from what a process remembers of the caller; the
# conditional upsert adds nothing, and the usage is not written, if the sum would pass it.
# The counters' row locks are held until commit, taken in one order: concurrent charges
# of one consumer are counted one after another and never pass the quota together.
_CHARGE = f"""
    WITH asked AS (
        SELECT * FROM unnest(%(request_ids)s::uuid[], %(consumer_ids)s::int[],
                             %(purposes)s::text[], %(endpoints)s::text[], %(dataset_ids)s::int[],
                             %(observations)s::bigint[], %(occurred_at)s::timestamptz[])
            AS a (request_id, consumer_id, purpose, endpoint, dataset_id, observations,
                  occurred_at)
    ), quota AS (
        SELECT a.consumer_id, {_MONTH.format(time="a.occurred_at")} AS month,
               sum(a.observations) AS total, c.monthly_quota
        FROM asked a JOIN consumer c ON c.id = a.consumer_id
        GROUP BY a.consumer_id, month, c.monthly_quota
    ), counted AS (
        INSERT INTO quota_usage AS q (consumer_id, month, observations)
        SELECT consumer_id, month, total FROM quota
        WHERE monthly_quota IS NULL OR total <= monthly_quota
        ORDER BY consumer_id, month
        ON CONFLICT (consumer_id, month) DO UPDATE
            SET observations = q.observations + excluded.observations
            WHERE (SELECT quota.monthly_quota FROM quota
                   WHERE quota.consumer_id = q.consumer_id AND quota.month = q.month) IS NULL
               OR q.observations + excluded.observations
                  <= (SELECT quota.monthly_quota FROM quota
                      WHERE quota.consumer_id = q.consumer_id AND quota.month = q.month)
        RETURNING consumer_id, month
    ), recorded AS (
        INSERT INTO usage (request_id, consumer_id, purpose, dataset_id, supplier_id, endpoint,
                           observations, occurred_at, own_use)
        SELECT a.request_id, a.consumer_id, a.purpose, ds.id, ds.supplier_id, a.endpoint,
               a.observations, a.occurred_at,
               -- A consumer acting for the dataset's supplier: the supplier's own use.
               coalesce(ds.supplier_id = c.supplier_id, false)
        FROM asked a
        JOIN dataset ds ON ds.id = a.dataset_id
        LEFT JOIN consumer c ON c.id = a.consumer_id
        WHERE a.consumer_id IS NULL
           OR (a.consumer_id, {_MONTH.format(time="a.occurred_at")})
              IN (SELECT consumer_id, month FROM counted)
        ON CONFLICT (request_id, dataset_id) DO NOTHING
    )
    SELECT DISTINCT a.request_id, q.monthly_quota,
           (q.consumer_id, q.month) IN (SELECT consumer_id, month FROM counted)
    FROM asked a
    JOIN quota q ON q.consumer_id = a.consumer_id
                AND q.month = {_MONTH.format(time="a.occurred_at")}
"""


def charge_all(conn: psycopg.Connection, asked: Sequence[Usage]) -> list[Charge]:
    """Record what each request served (observations > 0 per dataset) and count it for its
    consumer's month, in one statement; return each request's charge, in order.

    A consumer's requests of a month are charged together, all of them or, if together
    they would pass its monthly quota, none: then charge each alone (`charge_usage`) to
    learn which fit.
    """
    rows: list[tuple[Usage, int, int]] = [
        (one, dataset_id, n) for one in asked for dataset_id, n in one.observations.items() if n > 0
    ]
    if not rows:
        return [Charge(recorded=True, quota=None) for _ in asked]
    counted = {
        request_id: (quota, charged)
        for request_id, quota, charged in conn.execute(
            _CHARGE,
            {
                "request_ids": [one.request_id for one, _, _ in rows],
                "consumer_ids": [one.consumer_id for one, _, _ in rows],
                "purposes": [one.purpose for one, _, _ in rows],
                "endpoints": [one.endpoint for one, _, _ in rows],
                "dataset_ids": [dataset_id for _, dataset_id, _ in rows],
                "observations": [n for _, _, n in rows],
                "occurred_at": [one.occurred_at for one, _, _ in rows],
            },
        ).fetchall()
    }
    charges = []
    for one in asked:
        if one.consumer_id is None or not any(n > 0 for n in one.observations.values()):
            charges.append(Charge(recorded=True, quota=None))
            continue
        quota, charged = counted.get(one.request_id, (None, False))
        charges.append(Charge(recorded=charged, quota=quota))
    return charges


def charge_usage(
    conn: psycopg.Connection,
    *,
    request_id: UUID,
    consumer_id: int | None,
    purpose: str,
    endpoint: str,
    observations: Mapping[int, int],
    occurred_at: datetime,
) -> Charge:
    """Record what one request served (dataset id -> observations > 0) and count it for the
    consumer's month, unless the consumer's monthly quota cannot hold it."""
    one = Usage(request_id, consumer_id, purpose, endpoint, observations, occurred_at)
    return charge_all(conn, [one])[0]


def get_quota_used(conn: psycopg.Connection, *, consumer_id: int, month: date) -> int:
    """Return the observations counted for a consumer in `month` (its first day)."""
    row = conn.execute(
        "SELECT observations FROM quota_usage WHERE consumer_id = %s AND month = %s",
        (consumer_id, month),
    ).fetchone()
    return row[0] if row is not None else 0


def recount_quota(conn: psycopg.Connection, *, consumer_id: int, at: datetime) -> int:
    """Set a consumer's counter of the month holding `at` to that month's ledger; return it.

    The counter's row is locked first, in a statement of its own, so that the sum, read by
    the next statement, sees every charge that held the lock before: none is missed, and
    charges after it wait for this transaction.
    """
    month = _MONTH.format(time="%(at)s::timestamptz")
    params = {"consumer_id": consumer_id, "at": at}
    conn.execute(
        f"""
        INSERT INTO quota_usage (consumer_id, month, observations)
        VALUES (%(consumer_id)s, {month}, 0)
        ON CONFLICT (consumer_id, month) DO UPDATE SET observations = quota_usage.observations
        """,
        params,
    )
    row = conn.execute(
        f"""
        UPDATE quota_usage q SET observations = (
            SELECT coalesce(sum(u.observations), 0) FROM usage u
            WHERE u.consumer_id = q.consumer_id
              AND u.occurred_at >= q.month::timestamp AT TIME ZONE 'UTC'
              AND u.occurred_at < (q.month + interval '1 month')::timestamp AT TIME ZONE 'UTC'
        )
        WHERE q.consumer_id = %(consumer_id)s AND q.month = {month}
        RETURNING observations
        """,
        params,
    ).fetchone()
    assert row is not None
    return int(row[0])


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
