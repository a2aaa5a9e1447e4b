"""A builder of fair-share fixtures: suppliers, datasets, consumers, keys, tariffs and usage.

Registry rows go in by plain SQL so that these tests do not depend on the administration
code; usage goes through the ledger's own `usage.charge_usage`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg

from datahub.fairshare import keys
from datahub.storage import usage


def utc(year: int, month: int, day: int = 1, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# A tariff's default start: long before any usage of the tests.
EPOCH = utc(2020, 1)


class FairShareSeed:
    """Builds the fair-share registry and ledger on one connection; remembers ids by slug."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.suppliers: dict[str, int] = {}
        self.datasets: dict[str, int] = {}
        self.consumers: dict[str, int] = {}
        self.purposes: dict[str, str] = {}

    def supplier(self, slug: str) -> int:
        if slug not in self.suppliers:
            row = self.conn.execute(
                "INSERT INTO supplier (slug, name) VALUES (%s, %s) "
                "ON CONFLICT (slug) DO UPDATE SET name = excluded.name RETURNING id",
                (slug, slug.upper()),
            ).fetchone()
            assert row is not None
            self.suppliers[slug] = row[0]
        return self.suppliers[slug]

    def dataset(self, slug: str, *, supplier: str, licence_class: str = "commercial") -> int:
        row = self.conn.execute(
            """
            INSERT INTO dataset (slug, supplier_id, name, licence_class, licence_id,
                                 licence_name, licence_url, attribution)
            VALUES (%s, %s, %s, %s, 'test', 'Test licence', 'https://example.org/test', 'Test')
            RETURNING id
            """,
            (slug, self.supplier(supplier), slug, licence_class),
        ).fetchone()
        assert row is not None
        self.datasets[slug] = row[0]
        return row[0]

    def consumer(self, slug: str, *, purpose: str, supplier: str | None = None) -> int:
        supplier_id = self.supplier(supplier) if supplier is not None else None
        row = self.conn.execute(
            "INSERT INTO consumer (slug, name, purpose, supplier_id) VALUES (%s, %s, %s, %s) "
            "RETURNING id",
            (slug, slug, purpose, supplier_id),
        ).fetchone()
        assert row is not None
        self.consumers[slug] = row[0]
        self.purposes[slug] = purpose
        return row[0]

    def key(self, consumer: str, *scopes: str) -> str:
        """Make an API key of a consumer; return the secret to present."""
        new = keys.generate_key()
        self.conn.execute(
            "INSERT INTO api_key (consumer_id, prefix, key_hash, scopes) VALUES (%s, %s, %s, %s)",
            (self.consumers[consumer], new.prefix, new.key_hash, list(scopes or ("read",))),
        )
        return new.secret

    def tariff(
        self,
        dataset: str,
        purpose: str,
        *,
        cents: int,
        shadow: int = 0,
        fee_bp: int = 0,
        version: int = 1,
        valid_from: datetime = EPOCH,
    ) -> None:
        self.conn.execute(
            """
            INSERT INTO tariff (dataset_id, purpose, version, valid_from, cents_per_million,
                                shadow_cents_per_million, platform_fee_basis_points)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            """,
            (self.datasets[dataset], purpose, version, valid_from, cents, shadow, fee_bp),
        )

    def use(
        self,
        consumer: str | None,
        dataset: str,
        observations: int,
        at: datetime,
        *,
        purpose: str | None = None,
    ) -> None:
        """Record one request's usage of one dataset; consumer None is anonymous."""
        usage.charge_usage(
            self.conn,
            request_id=uuid.uuid4(),
            consumer_id=self.consumers[consumer] if consumer is not None else None,
            purpose=purpose or (self.purposes[consumer] if consumer else "public_interest"),
            endpoint="/v1/test",
            observations={self.datasets[dataset]: observations},
            occurred_at=at,
        )
