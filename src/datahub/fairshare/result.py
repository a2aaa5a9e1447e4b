"""The result of a period as it is hashed, stored and published: typed, and still plain JSON.

These are TypedDicts, not classes: a result is stored as JSON and its SHA-256 is taken
over its canonical JSON (close.canonical_json), so its keys and values must stay exactly
as they were when a period was closed. Amounts are integer cents, counts are integers,
times are RFC 3339 strings in UTC; `purpose` keys are `domain.Purpose` values.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class InvoiceLine(TypedDict):
    """What a consumer owes for one dataset, purpose and tariff version."""

    dataset: str
    supplier: str
    purpose: str
    tariff_version: int | None  # None: no tariff was in force
    observations: int
    cents_per_million: int  # as charged: 0 for open data
    cents: int
    platform_fee_basis_points: int
    platform_fee_cents: int
    supplier_cents: int


class Invoice(TypedDict):
    """A consumer's invoice: the total is rounded once, the lines sum exactly to it."""

    consumer: str
    purpose: str | None  # the purpose the consumer declares; None: no usage
    observations: int
    total_cents: int
    lines: list[InvoiceLine]


class StatementLine(TypedDict):
    """What one dataset, purpose and tariff version earned a supplier, over every consumer."""

    dataset: str
    purpose: str
    tariff_version: int | None
    observations: int
    revenue_cents: int
    platform_fee_cents: int
    payout_cents: int
    shadow_value_cents: int
    unpriced_observations: int
    # True on a line of the supplier's own use (never invoiced); absent on every other.
    own_use: NotRequired[bool]


class SupplierTotals(TypedDict):
    """A supplier's totals: what the transparency report shows of it."""

    payout_cents: int
    revenue_cents: int
    platform_fee_cents: int
    observations: int
    observations_by_purpose: dict[str, int]  # purpose -> observations, every purpose
    shadow_value_cents: int
    unpriced_observations: int
    # Of `observations`, the supplier's own use; absent where there is none (and in every
    # period closed before own use was told apart).
    own_use_observations: NotRequired[int]


class SupplierResult(SupplierTotals):
    """A supplier's totals and the lines they sum."""

    lines: list[StatementLine]


class PurposeTotals(TypedDict):
    observations: int
    revenue_cents: int
    consumers: int  # consumers with usage of this purpose (anonymous use not counted)


class AppliedTariff(TypedDict):
    """A tariff version that rated some of the period's usage."""

    dataset: str
    purpose: str
    version: int
    valid_from: str
    cents_per_million: int
    charged_cents_per_million: int  # 0 for open data, which is free
    shadow_cents_per_million: int
    platform_fee_basis_points: int
    observations: int


class Conservation(TypedDict):
    """Every split of a result checked against its whole."""

    revenue_equals_platform_fee_plus_payouts: bool
    revenue_equals_invoice_totals: bool
    invoices_equal_their_lines: bool
    lines_equal_platform_fee_plus_supplier_share: bool
    suppliers_equal_their_lines: bool


class RatedPeriod(TypedDict):
    """A period's usage rated: invoices, supplier payouts, platform fee, shadow values."""

    period: str
    currency: str
    revenue_cents: int
    platform_fee_cents: int
    supplier_payouts_cents: dict[str, int]  # supplier slug -> cents
    shadow_value_cents: int
    observations: int
    anonymous_observations: int
    unpriced_observations: int
    own_use_observations: NotRequired[int]  # as in SupplierTotals
    purposes: dict[str, PurposeTotals]
    invoices: list[Invoice]
    suppliers: dict[str, SupplierResult]  # by supplier slug
    tariffs: list[AppliedTariff]
    conservation: Conservation


class ClosedPeriod(RatedPeriod):
    """A closed period's result as stored and hashed."""

    usage_rows: int  # the usage rows assigned to the period
    usage_before: str  # the period's end: open usage before it was closed into it


class PublishedPeriod(ClosedPeriod):
    """A closed period's result with its hash and closing time, which are not hashed."""

    hash: str
    closed_at: str
