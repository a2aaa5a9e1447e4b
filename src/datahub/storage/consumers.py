"""Consumers, their API keys (hashes only) and their grants on datasets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg


@dataclass(frozen=True, slots=True)
class ConsumerFields:
    """What an administrator sets on a consumer (everything but its slug)."""

    name: str
    purpose: str
    supplier_id: int | None
    monthly_quota: int | None
    requests_per_s: int | None


@dataclass(frozen=True, slots=True)
class ConsumerRecord:
    """A consumer with the supplier it acts for, its active keys and granted datasets."""

    id: int
    slug: str
    name: str
    purpose: str
    supplier_id: int | None
    supplier_slug: str | None
    monthly_quota: int | None
    requests_per_s: int | None
    active_keys: int
    grants: tuple[str, ...]  # dataset slugs
    created_at: datetime
    updated_at: datetime


_SELECT = """
    SELECT c.id, c.slug, c.name, c.purpose, c.supplier_id, s.slug, c.monthly_quota,
           c.requests_per_s,
           (SELECT count(*) FROM api_key k WHERE k.consumer_id = c.id AND k.revoked_at IS NULL),
           ARRAY(SELECT ds.slug FROM access_grant g JOIN dataset ds ON ds.id = g.dataset_id
                 WHERE g.consumer_id = c.id ORDER BY ds.slug),
           c.created_at, c.updated_at
    FROM consumer c LEFT JOIN supplier s ON s.id = c.supplier_id
"""


def _consumer(row: tuple[Any, ...]) -> ConsumerRecord:
    (id_, slug, name, purpose, supplier_id, supplier_slug, quota, rate, active) = row[:9]
    return ConsumerRecord(
        id_,
        slug,
        name,
        purpose,
        supplier_id,
        supplier_slug,
        quota,
        rate,
        active,
        tuple(row[9]),
        row[10],
        row[11],
    )


def get_consumer(conn: psycopg.Connection, *, slug: str) -> ConsumerRecord | None:
    """Return one consumer by slug, or None."""
    row = conn.execute(f"{_SELECT} WHERE c.slug = %s", (slug,)).fetchone()
    return _consumer(row) if row is not None else None


def list_consumers(conn: psycopg.Connection) -> list[ConsumerRecord]:
    """List every consumer by slug."""
    return [_consumer(row) for row in conn.execute(f"{_SELECT} ORDER BY c.slug").fetchall()]


def insert_consumer(conn: psycopg.Connection, *, slug: str, fields: ConsumerFields) -> int | None:
    """Insert a consumer; return its id, or None if the slug is taken."""
    row = conn.execute(
        """
        INSERT INTO consumer (slug, name, purpose, supplier_id, monthly_quota, requests_per_s)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (slug) DO NOTHING
        RETURNING id
        """,
        (
            slug,
            fields.name,
            fields.purpose,
            fields.supplier_id,
            fields.monthly_quota,
            fields.requests_per_s,
        ),
    ).fetchone()
    return row[0] if row is not None else None


def update_consumer(conn: psycopg.Connection, *, consumer_id: int, fields: ConsumerFields) -> bool:
    """Set a consumer's fields; return whether anything changed (updated_at moves only then)."""
    row = conn.execute(
        """
        UPDATE consumer SET name = %(name)s, purpose = %(purpose)s,
            supplier_id = %(supplier_id)s, monthly_quota = %(monthly_quota)s,
            requests_per_s = %(requests_per_s)s, updated_at = now()
        WHERE id = %(id)s
          AND (name, purpose, supplier_id, monthly_quota, requests_per_s)
              IS DISTINCT FROM (%(name)s, %(purpose)s, %(supplier_id)s::int,
                                %(monthly_quota)s::bigint, %(requests_per_s)s::int)
        RETURNING id
        """,
        {
            "id": consumer_id,
            "name": fields.name,
            "purpose": fields.purpose,
            "supplier_id": fields.supplier_id,
            "monthly_quota": fields.monthly_quota,
            "requests_per_s": fields.requests_per_s,
        },
    ).fetchone()
    return row is not None


# API keys ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key as administrators see it: never the key, only its prefix."""

    prefix: str
    consumer_slug: str
    scopes: tuple[str, ...]
    label: str
    created_at: datetime
    revoked_at: datetime | None


_SELECT_KEY = """
    SELECT k.prefix, c.slug, k.scopes, k.label, k.created_at, k.revoked_at
    FROM api_key k JOIN consumer c ON c.id = k.consumer_id
"""


def _key(row: tuple[Any, ...]) -> KeyRecord:
    return KeyRecord(row[0], row[1], tuple(row[2]), row[3], row[4], row[5])


def insert_key(
    conn: psycopg.Connection,
    *,
    consumer_id: int,
    prefix: str,
    key_hash: bytes,
    scopes: Sequence[str],
    label: str,
) -> KeyRecord:
    """Store a new key's hash; return it as listed."""
    conn.execute(
        """
        INSERT INTO api_key (consumer_id, prefix, key_hash, scopes, label)
        VALUES (%s, %s, %s, %s, %s)
        """,
        (consumer_id, prefix, key_hash, list(scopes), label),
    )
    row = conn.execute(f"{_SELECT_KEY} WHERE k.prefix = %s", (prefix,)).fetchone()
    assert row is not None
    return _key(row)


def list_keys(conn: psycopg.Connection, *, consumer_id: int | None = None) -> list[KeyRecord]:
    """List keys, of one consumer or all, by consumer and creation."""
    rows = conn.execute(
        f"{_SELECT_KEY} WHERE %(id)s::int IS NULL OR k.consumer_id = %(id)s "
        "ORDER BY c.slug, k.created_at, k.prefix",
        {"id": consumer_id},
    ).fetchall()
    return [_key(row) for row in rows]


def get_key(conn: psycopg.Connection, *, prefix: str) -> KeyRecord | None:
    """Return a key by its prefix (never its hash), or None."""
    row = conn.execute(f"{_SELECT_KEY} WHERE k.prefix = %s", (prefix,)).fetchone()
    return _key(row) if row is not None else None


def mark_key_revoked(conn: psycopg.Connection, *, prefix: str) -> KeyRecord | None:
    """Revoke a key (a revoked key keeps its first revocation time); None if unknown."""
    row = conn.execute(
        """
        UPDATE api_key SET revoked_at = coalesce(revoked_at, now()) WHERE prefix = %s
        RETURNING prefix
        """,
        (prefix,),
    ).fetchone()
    if row is None:
        return None
    found = conn.execute(f"{_SELECT_KEY} WHERE k.prefix = %s", (prefix,)).fetchone()
    assert found is not None
    return _key(found)


# Grants -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GrantRecord:
    consumer_slug: str
    dataset_slug: str
    licence_class: str
    granted_at: datetime


_SELECT_GRANT = """
    SELECT c.slug, ds.slug, ds.licence_class, g.granted_at
    FROM access_grant g JOIN consumer c ON c.id = g.consumer_id
    JOIN dataset ds ON ds.id = g.dataset_id
"""


def insert_grant(conn: psycopg.Connection, *, consumer_id: int, dataset_id: int) -> bool:
    """Grant a consumer a dataset; return False if it had the grant already."""
    row = conn.execute(
        """
        INSERT INTO access_grant (consumer_id, dataset_id) VALUES (%s, %s)
        ON CONFLICT ON CONSTRAINT pk_access_grant DO NOTHING
        RETURNING consumer_id
        """,
        (consumer_id, dataset_id),
    ).fetchone()
    return row is not None


def delete_grant(conn: psycopg.Connection, *, consumer_id: int, dataset_id: int) -> bool:
    """Withdraw a grant; return False if there was none."""
    cur = conn.execute(
        "DELETE FROM access_grant WHERE consumer_id = %s AND dataset_id = %s",
        (consumer_id, dataset_id),
    )
    return cur.rowcount > 0


def get_grant(conn: psycopg.Connection, *, consumer_id: int, dataset_id: int) -> GrantRecord | None:
    """Return one grant, or None."""
    row = conn.execute(
        f"{_SELECT_GRANT} WHERE g.consumer_id = %s AND g.dataset_id = %s",
        (consumer_id, dataset_id),
    ).fetchone()
    return GrantRecord(*row) if row is not None else None


def list_grants(
    conn: psycopg.Connection, *, consumer_id: int | None = None, dataset_id: int | None = None
) -> list[GrantRecord]:
    """List grants by consumer and dataset, optionally of one consumer or dataset."""
    rows = conn.execute(
        f"""
        {_SELECT_GRANT}
        WHERE (%(consumer)s::int IS NULL OR g.consumer_id = %(consumer)s)
          AND (%(dataset)s::int IS NULL OR g.dataset_id = %(dataset)s)
        ORDER BY c.slug, ds.slug
        """,
        {"consumer": consumer_id, "dataset": dataset_id},
    ).fetchall()
    return [GrantRecord(*row) for row in rows]
