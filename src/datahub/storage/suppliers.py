"""The supplier table: organisations that own devices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from datahub.domain import NO_LICENCE, NO_LICENCE_NAME


@dataclass(frozen=True, slots=True)
class SupplierRow:
    slug: str
    name: str
    kind: str = "other"


def upsert_suppliers(
    conn: psycopg.Connection, *, suppliers: Sequence[SupplierRow]
) -> dict[str, int]:
    """Insert or update suppliers by slug; return slug -> id for all of them.

    Each supplier gets its own dataset, with its slug, if it has none: restricted, so
    that no device is public until an administrator says so, and without a licence until
    one is chosen.
    """
    if not suppliers:
        return {}
    rows = conn.execute(
        """
        INSERT INTO supplier (slug, name, kind)
        SELECT * FROM unnest(%(slug)s::text[], %(name)s::text[], %(kind)s::text[])
        ON CONFLICT (slug) DO UPDATE SET name = excluded.name, kind = excluded.kind
        RETURNING slug, id
        """,
        {
            "slug": [s.slug for s in suppliers],
            "name": [s.name for s in suppliers],
            "kind": [s.kind for s in suppliers],
        },
    ).fetchall()
    ids = {slug: supplier_id for slug, supplier_id in rows}
    _insert_own_datasets(conn, supplier_ids=list(ids.values()))
    return ids


def select_suppliers(conn: psycopg.Connection, *, slugs: Sequence[str]) -> dict[str, SupplierRow]:
    """Return slug -> supplier of those that exist."""
    rows = conn.execute(
        "SELECT slug, name, kind FROM supplier WHERE slug = ANY(%s)", (list(slugs),)
    ).fetchall()
    return {row[0]: SupplierRow(*row) for row in rows}


def update_supplier(conn: psycopg.Connection, *, supplier: SupplierRow) -> bool:
    """Set a supplier's name and kind by its slug; tell whether it exists."""
    cur = conn.execute(
        "UPDATE supplier SET name = %s, kind = %s WHERE slug = %s",
        (supplier.name, supplier.kind, supplier.slug),
    )
    return cur.rowcount == 1


def insert_supplier(conn: psycopg.Connection, *, supplier: SupplierRow) -> int | None:
    """Insert a supplier and its own restricted dataset; return its id (None: slug taken)."""
    row = conn.execute(
        """
        INSERT INTO supplier (slug, name, kind) VALUES (%s, %s, %s)
        ON CONFLICT (slug) DO NOTHING
        RETURNING id
        """,
        (supplier.slug, supplier.name, supplier.kind),
    ).fetchone()
    if row is None:
        return None
    _insert_own_datasets(conn, supplier_ids=[row[0]])
    return int(row[0])


def _insert_own_datasets(conn: psycopg.Connection, *, supplier_ids: Sequence[int]) -> None:
    conn.execute(
        """
        INSERT INTO dataset (slug, supplier_id, name, licence_class, licence_id, licence_name,
                             attribution)
        SELECT s.slug, s.id, s.name, 'restricted', %s, %s, s.name
        FROM supplier s WHERE s.id = ANY(%s)
        ON CONFLICT (slug) DO NOTHING
        """,
        (NO_LICENCE, NO_LICENCE_NAME, list(supplier_ids)),
    )


@dataclass(frozen=True, slots=True)
class SupplierRecord:
    """A supplier with its datasets and how many devices it owns."""

    id: int
    slug: str
    name: str
    kind: str
    datasets: tuple[str, ...]
    device_count: int
    created_at: datetime


def list_suppliers(conn: psycopg.Connection, *, slug: str | None = None) -> list[SupplierRecord]:
    """List suppliers by slug (or the one with `slug`) with their datasets and device counts."""
    rows = conn.execute(
        """
        SELECT s.id, s.slug, s.name, s.kind,
               ARRAY(SELECT ds.slug FROM dataset ds WHERE ds.supplier_id = s.id ORDER BY ds.slug),
               (SELECT count(*) FROM device d WHERE d.supplier_id = s.id),
               s.created_at
        FROM supplier s
        WHERE %(slug)s::text IS NULL OR s.slug = %(slug)s
        ORDER BY s.slug
        """,
        {"slug": slug},
    ).fetchall()
    return [
        SupplierRecord(row[0], row[1], row[2], row[3], tuple(row[4]), row[5], row[6])
        for row in rows
    ]


def select_supplier_ids(conn: psycopg.Connection, *, slugs: Sequence[str]) -> dict[str, int]:
    """Return slug -> id for the suppliers that exist."""
    rows = conn.execute(
        "SELECT slug, id FROM supplier WHERE slug = ANY(%s)", (list(slugs),)
    ).fetchall()
    return {slug: supplier_id for slug, supplier_id in rows}
