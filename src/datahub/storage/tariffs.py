"""Tariffs: versioned prices per dataset and purpose, in cents per million observations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg


@dataclass(frozen=True, slots=True)
class Price:
    """What a tariff version charges, values, and keeps for the platform."""

    cents_per_million: int
    shadow_cents_per_million: int
    platform_fee_basis_points: int


@dataclass(frozen=True, slots=True)
class TariffRecord:
    """One tariff version; `current` tells whether it is the one in force at the asked time."""

    dataset_slug: str
    supplier_slug: str
    licence_class: str
    purpose: str
    version: int
    valid_from: datetime
    price: Price
    created_at: datetime
    current: bool


_SELECT = """
    SELECT ds.slug, s.slug, ds.licence_class, t.purpose, t.version, t.valid_from,
           t.cents_per_million, t.shadow_cents_per_million, t.platform_fee_basis_points,
           t.created_at,
           t.valid_from <= %(at)s AND NOT EXISTS (
               SELECT 1 FROM tariff n
               WHERE n.dataset_id = t.dataset_id AND n.purpose = t.purpose
                 AND n.valid_from > t.valid_from AND n.valid_from <= %(at)s
           )
    FROM tariff t JOIN dataset ds ON ds.id = t.dataset_id JOIN supplier s ON s.id = ds.supplier_id
"""


def _tariff(row: tuple[Any, ...]) -> TariffRecord:
    dataset, supplier, licence_class, purpose, version, valid_from = row[:6]
    return TariffRecord(
        dataset,
        supplier,
        licence_class,
        purpose,
        version,
        valid_from,
        Price(row[6], row[7], row[8]),
        row[9],
        bool(row[10]),
    )


def list_tariffs(
    conn: psycopg.Connection, *, at: datetime, dataset_id: int | None = None
) -> list[TariffRecord]:
    """List every tariff version by dataset, purpose and version, marking those in force at `at`."""
    rows = conn.execute(
        f"""
        {_SELECT}
        WHERE %(dataset_id)s::int IS NULL OR t.dataset_id = %(dataset_id)s
        ORDER BY ds.slug, t.purpose, t.version
        """,
        {"at": at, "dataset_id": dataset_id},
    ).fetchall()
    return [_tariff(row) for row in rows]


def get_latest_tariff(
    conn: psycopg.Connection, *, dataset_id: int, purpose: str, at: datetime
) -> TariffRecord | None:
    """Return the latest version of a dataset's tariff for a purpose, or None.

    It locks the dataset's row, so that two new versions are numbered one after the other.
    """
    conn.execute("SELECT 1 FROM dataset WHERE id = %s FOR UPDATE", (dataset_id,))
    row = conn.execute(
        f"""
        {_SELECT}
        WHERE t.dataset_id = %(dataset_id)s AND t.purpose = %(purpose)s
        ORDER BY t.version DESC LIMIT 1
        """,
        {"at": at, "dataset_id": dataset_id, "purpose": purpose},
    ).fetchone()
    return _tariff(row) if row is not None else None


def insert_tariff(
    conn: psycopg.Connection,
    *,
    dataset_id: int,
    purpose: str,
    version: int,
    valid_from: datetime,
    price: Price,
) -> None:
    """Store a new tariff version."""
    conn.execute(
        """
        INSERT INTO tariff (dataset_id, purpose, version, valid_from, cents_per_million,
                            shadow_cents_per_million, platform_fee_basis_points)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        """,
        (
            dataset_id,
            purpose,
            version,
            valid_from,
            price.cents_per_million,
            price.shadow_cents_per_million,
            price.platform_fee_basis_points,
        ),
    )


def has_price_from(conn: psycopg.Connection, *, dataset_id: int, at: datetime) -> bool:
    """Tell whether a dataset charges anything at `at` or later, for any purpose."""
    row = conn.execute(
        """
        SELECT EXISTS (
            SELECT 1 FROM tariff t
            WHERE t.dataset_id = %(dataset_id)s AND t.cents_per_million > 0
              AND (t.valid_from > %(at)s OR NOT EXISTS (
                  SELECT 1 FROM tariff n
                  WHERE n.dataset_id = t.dataset_id AND n.purpose = t.purpose
                    AND n.valid_from > t.valid_from AND n.valid_from <= %(at)s))
        )
        """,
        {"dataset_id": dataset_id, "at": at},
    ).fetchone()
    return bool(row and row[0])
