"""Closing fair-share periods: the usage to close, rated by its tariffs, and the stored results.

A close runs in one transaction: `lock_closing`, `stage_usage_to_close`,
`select_rated_usage`, `insert_period`, `assign_period`. The staged rows are exactly the
rows rated and then assigned, whatever usage is written meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

# The key of the advisory lock that makes closes run one at a time; any fixed bigint.
_CLOSE_LOCK = 7_146_851_003


@dataclass(frozen=True, slots=True)
class TariffRow:
    """The tariff version that rated some usage."""

    dataset: str
    purpose: str
    version: int
    valid_from: datetime
    cents_per_million: int
    shadow_cents_per_million: int
    platform_fee_basis_points: int


@dataclass(frozen=True, slots=True)
class RatedUsageRow:
    """Observations of one consumer (None: anonymous) and purpose on one dataset, one tariff."""

    consumer: str | None
    consumer_purpose: str | None  # the purpose the consumer declares now
    purpose: str  # the purpose the usage was served for
    dataset: str
    licence_class: str
    supplier: str
    tariff: TariffRow | None  # None: no tariff was in force
    observations: int
    own_use: bool = False  # the supplier's own use of its dataset: never invoiced


@dataclass(frozen=True, slots=True)
class PeriodRow:
    period: str
    closed_at: datetime
    hash: str
    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PeriodSummaryRow:
    period: str
    closed_at: datetime
    hash: str


@dataclass(frozen=True, slots=True)
class DailyUsageRow:
    """A consumer's usage of one dataset on one UTC day."""

    day: date
    dataset: str
    supplier: str
    requests: int
    observations: int


def lock_closing(conn: psycopg.Connection) -> None:
    """Wait until no other transaction is closing a period; hold the lock until commit."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CLOSE_LOCK,))


def stage_usage_to_close(conn: psycopg.Connection, *, before: datetime) -> int:
    """Set the open usage that occurred before `before` aside for this transaction; count it.

    Needs a transaction: the staging table is dropped at its commit.
    """
    conn.execute("DROP TABLE IF EXISTS pg_temp.fairshare_closing")
    cur = conn.execute(
        """
        CREATE TEMP TABLE fairshare_closing ON COMMIT DROP AS
        SELECT id FROM usage WHERE period IS NULL AND occurred_at < %s
        """,
        (before,),
    )
    conn.execute("ALTER TABLE fairshare_closing ADD PRIMARY KEY (id)")
    conn.execute("ANALYZE fairshare_closing")
    return cur.rowcount


def select_rated_usage(conn: psycopg.Connection) -> list[RatedUsageRow]:
    """Sum the staged usage per consumer, purpose, dataset and the tariff in force for it.

    The tariff of a row is its dataset's for the row's purpose with the latest
    `valid_from` at or before the row's `occurred_at`; none if there is no such version.
    """
    rows = conn.execute(
        """
        SELECT c.slug, c.purpose, u.purpose, ds.slug, ds.licence_class, s.slug,
               t.version, t.valid_from, t.cents_per_million, t.shadow_cents_per_million,
               t.platform_fee_basis_points, sum(u.observations)::bigint, u.own_use
        FROM fairshare_closing k
        JOIN usage u ON u.id = k.id
        JOIN dataset ds ON ds.id = u.dataset_id
        JOIN supplier s ON s.id = u.supplier_id
        LEFT JOIN consumer c ON c.id = u.consumer_id
        LEFT JOIN LATERAL (
            SELECT t.version, t.valid_from, t.cents_per_million, t.shadow_cents_per_million,
                   t.platform_fee_basis_points
            FROM tariff t
            WHERE t.dataset_id = u.dataset_id AND t.purpose = u.purpose
              AND t.valid_from <= u.occurred_at
            ORDER BY t.valid_from DESC
            LIMIT 1
        ) t ON true
        GROUP BY c.slug, c.purpose, u.purpose, ds.slug, ds.licence_class, s.slug,
                 t.version, t.valid_from, t.cents_per_million, t.shadow_cents_per_million,
                 t.platform_fee_basis_points, u.own_use
        ORDER BY c.slug NULLS FIRST, u.purpose, ds.slug, t.version NULLS FIRST, u.own_use
        """
    ).fetchall()
    return [
        RatedUsageRow(
            consumer=r[0],
            consumer_purpose=r[1],
            purpose=r[2],
            dataset=r[3],
            licence_class=r[4],
            supplier=r[5],
            tariff=None if r[6] is None else TariffRow(r[3], r[2], *r[6:11]),
            observations=int(r[11]),
            own_use=r[12],
        )
        for r in rows
    ]


def insert_period(
    conn: psycopg.Connection,
    *,
    period: str,
    closed_at: datetime,
    hash: str,
    result: Mapping[str, Any],
) -> None:
    """Store a closed period's result and its hash."""
    conn.execute(
        "INSERT INTO fairshare_period (period, closed_at, hash, result) VALUES (%s, %s, %s, %s)",
        (period, closed_at, hash, Jsonb(dict(result))),
    )


def assign_period(conn: psycopg.Connection, *, period: str) -> int:
    """Assign the staged usage to a stored period; return the rows assigned."""
    cur = conn.execute(
        "UPDATE usage u SET period = %s FROM fairshare_closing k WHERE u.id = k.id",
        (period,),
    )
    return cur.rowcount


def get_period(conn: psycopg.Connection, *, period: str) -> PeriodRow | None:
    """Return a closed period with its stored result, or None."""
    row = conn.execute(
        "SELECT period, closed_at, hash, result FROM fairshare_period WHERE period = %s",
        (period,),
    ).fetchone()
    return None if row is None else PeriodRow(*row)


def get_last_period(conn: psycopg.Connection) -> str | None:
    """Return the latest closed period, or None if none is closed."""
    row = conn.execute("SELECT max(period) FROM fairshare_period").fetchone()
    return None if row is None else row[0]


def list_periods(conn: psycopg.Connection) -> list[PeriodSummaryRow]:
    """Return the closed periods, latest first."""
    rows = conn.execute(
        "SELECT period, closed_at, hash FROM fairshare_period ORDER BY period DESC"
    ).fetchall()
    return [PeriodSummaryRow(*row) for row in rows]


def select_daily_usage(
    conn: psycopg.Connection, *, consumer_id: int, start: datetime, end: datetime
) -> list[DailyUsageRow]:
    """Sum a consumer's usage per UTC day and dataset in [start, end), open or closed."""
    rows = conn.execute(
        """
        SELECT (u.occurred_at AT TIME ZONE 'UTC')::date AS day, ds.slug, s.slug,
               count(DISTINCT u.request_id), sum(u.observations)::bigint
        FROM usage u
        JOIN dataset ds ON ds.id = u.dataset_id
        JOIN supplier s ON s.id = u.supplier_id
        WHERE u.consumer_id = %s AND u.occurred_at >= %s AND u.occurred_at < %s
        GROUP BY day, ds.slug, s.slug
        ORDER BY day, ds.slug
        """,
        (consumer_id, start, end),
    ).fetchall()
    return [DailyUsageRow(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """Every caller's usage of one dataset on one UTC day, per purpose and period."""

    day: date
    consumer: str | None  # None: anonymous callers
    purpose: str
    dataset: str
    supplier: str
    period: str | None  # None: not closed yet
    requests: int
    observations: int


def select_ledger(conn: psycopg.Connection, *, start: datetime, end: datetime) -> list[LedgerRow]:
    """Sum the usage ledger per UTC day, consumer, purpose, dataset and period in [start, end)."""
    rows = conn.execute(
        """
        SELECT (u.occurred_at AT TIME ZONE 'UTC')::date AS day, c.slug, u.purpose, ds.slug,
               s.slug, u.period, count(DISTINCT u.request_id), sum(u.observations)::bigint
        FROM usage u
        LEFT JOIN consumer c ON c.id = u.consumer_id
        JOIN dataset ds ON ds.id = u.dataset_id
        JOIN supplier s ON s.id = u.supplier_id
        WHERE u.occurred_at >= %s AND u.occurred_at < %s
        GROUP BY day, c.slug, u.purpose, ds.slug, s.slug, u.period
        ORDER BY day, c.slug NULLS FIRST, u.purpose, ds.slug, u.period
        """,
        (start, end),
    ).fetchall()
    return [LedgerRow(r[0], r[1], r[2], r[3], r[4], r[5], int(r[6]), int(r[7])) for r in rows]


def get_supplier_slug(conn: psycopg.Connection, *, supplier_id: int) -> str | None:
    """Return a supplier's slug, or None if there is no such supplier."""
    row = conn.execute("SELECT slug FROM supplier WHERE id = %s", (supplier_id,)).fetchone()
    return None if row is None else row[0]


def supplier_exists(conn: psycopg.Connection, *, slug: str) -> bool:
    """Tell whether a supplier has this slug."""
    return conn.execute("SELECT 1 FROM supplier WHERE slug = %s", (slug,)).fetchone() is not None


def consumer_exists(conn: psycopg.Connection, *, slug: str) -> bool:
    """Tell whether a consumer has this slug."""
    return conn.execute("SELECT 1 FROM consumer WHERE slug = %s", (slug,)).fetchone() is not None
