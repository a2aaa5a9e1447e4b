"""The supplier table: organisations that own devices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True, slots=True)
class SupplierRow:
    slug: str
    name: str
    kind: str = "other"


def upsert_suppliers(
    conn: psycopg.Connection, *, suppliers: Sequence[SupplierRow]
) -> dict[str, int]:
    """Insert or update suppliers by slug; return slug -> id for all of them."""
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
    return {slug: supplier_id for slug, supplier_id in rows}


def select_supplier_ids(conn: psycopg.Connection, *, slugs: Sequence[str]) -> dict[str, int]:
    """Return slug -> id for the suppliers that exist."""
    rows = conn.execute(
        "SELECT slug, id FROM supplier WHERE slug = ANY(%s)", (list(slugs),)
    ).fetchall()
    return {slug: supplier_id for slug, supplier_id in rows}
