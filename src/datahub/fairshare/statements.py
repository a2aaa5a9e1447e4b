"""What each party sees of a closed period: a supplier's statement, a consumer's invoice,
and the public transparency report; as JSON-ready TypedDicts and as CSV rows.

All of it is cut from the period's stored result; nothing here is recomputed or rounded
again. The report names no consumer: its totals are per supplier, purpose and tariff.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import NotRequired, TypedDict

from datahub.config import OmbudsmanSettings
from datahub.fairshare.close import PURPOSES
from datahub.fairshare.result import (
    AppliedTariff,
    Conservation,
    Invoice,
    PublishedPeriod,
    PurposeTotals,
    SupplierResult,
    SupplierTotals,
)

Row = Sequence[str | int | None]


class SupplierStatement(SupplierResult):
    """A supplier's statement: its payout and the impact of free use, per dataset line."""

    period: str
    currency: str
    supplier: str
    hash: str
    closed_at: str


class ConsumerInvoice(Invoice):
    """A consumer's invoice of a closed period."""

    period: str
    currency: str
    hash: str
    closed_at: str


class TransparencyReport(TypedDict):
    """The public report of a closed period; it names no consumer."""

    period: str
    currency: str
    closed_at: str
    hash: str
    revenue_cents: int
    platform_fee_cents: int
    supplier_payouts_cents: dict[str, int]
    shadow_value_cents: int
    observations: int
    anonymous_observations: int
    unpriced_observations: int
    own_use_observations: NotRequired[int]  # only where there is own use
    invoices: int  # how many consumers were invoiced
    purposes: dict[str, PurposeTotals]
    suppliers: dict[str, SupplierTotals]
    tariffs: list[AppliedTariff]
    conservation: Conservation
    ombudsman: Ombudsman | None  # as the settings name the office now; not part of the hash


class Ombudsman(TypedDict):
    """The ombudsman for data value and data ethics, and how to reach the office."""

    name: str
    email: str | None
    url: str | None
    postal_address: str | None


def supplier_statement(result: PublishedPeriod, supplier: str) -> SupplierStatement:
    """Return a supplier's statement: its payout, lines and the shadow value of free use.

    A supplier without usage in the period gets a statement of zeros.
    """
    part = result["suppliers"].get(supplier) or _empty_supplier()
    return {
        "period": result["period"],
        "currency": result["currency"],
        "supplier": supplier,
        **part,
        "hash": result["hash"],
        "closed_at": result["closed_at"],
    }


def consumer_invoice(result: PublishedPeriod, consumer: str) -> ConsumerInvoice:
    """Return a consumer's invoice; one without usage in the period is empty, total 0."""
    invoice = next((i for i in result["invoices"] if i["consumer"] == consumer), None)
    if invoice is None:
        invoice = {
            "consumer": consumer,
            "purpose": None,
            "observations": 0,
            "total_cents": 0,
            "lines": [],
        }
    return {
        "period": result["period"],
        "currency": result["currency"],
        **invoice,
        "hash": result["hash"],
        "closed_at": result["closed_at"],
    }


def transparency_report(
    result: PublishedPeriod, *, ombudsman: OmbudsmanSettings
) -> TransparencyReport:
    """Return the public report: totals per supplier and purpose, tariffs, the conservation,
    and who the ombudsman is."""
    report: TransparencyReport = {
        "period": result["period"],
        "currency": result["currency"],
        "closed_at": result["closed_at"],
        "hash": result["hash"],
        "revenue_cents": result["revenue_cents"],
        "platform_fee_cents": result["platform_fee_cents"],
        "supplier_payouts_cents": result["supplier_payouts_cents"],
        "shadow_value_cents": result["shadow_value_cents"],
        "observations": result["observations"],
        "anonymous_observations": result["anonymous_observations"],
        "unpriced_observations": result["unpriced_observations"],
        "invoices": len(result["invoices"]),
        "purposes": result["purposes"],
        "suppliers": {slug: _totals(s) for slug, s in result["suppliers"].items()},
        "tariffs": result["tariffs"],
        "conservation": result["conservation"],
        "ombudsman": None
        if ombudsman.name is None
        else {
            "name": ombudsman.name,
            "email": ombudsman.email,
            "url": ombudsman.url,
            "postal_address": ombudsman.postal_address,
        },
    }
    if "own_use_observations" in result:
        report["own_use_observations"] = result["own_use_observations"]
    return report


def _totals(supplier: SupplierResult) -> SupplierTotals:
    totals: SupplierTotals = {
        "payout_cents": supplier["payout_cents"],
        "revenue_cents": supplier["revenue_cents"],
        "platform_fee_cents": supplier["platform_fee_cents"],
        "observations": supplier["observations"],
        "observations_by_purpose": supplier["observations_by_purpose"],
        "shadow_value_cents": supplier["shadow_value_cents"],
        "unpriced_observations": supplier["unpriced_observations"],
    }
    if "own_use_observations" in supplier:
        totals["own_use_observations"] = supplier["own_use_observations"]
    return totals


STATEMENT_HEADER: tuple[str, ...] = (
    "period",
    "supplier",
    "dataset",
    "purpose",
    "tariff_version",
    "observations",
    "revenue_cents",
    "platform_fee_cents",
    "payout_cents",
    "shadow_value_cents",
    "unpriced_observations",
)


# The purpose a statement's CSV gives a line of the supplier's own use.
OWN_USE = "own_use"


def statement_rows(statement: SupplierStatement) -> list[Row]:
    """One CSV row per statement line (`own_use` as the purpose of own use's), then a
    `total` row (dataset empty)."""
    rows: list[Row] = [
        (
            statement["period"],
            statement["supplier"],
            line["dataset"],
            OWN_USE if line.get("own_use") else line["purpose"],
            line["tariff_version"],
            line["observations"],
            line["revenue_cents"],
            line["platform_fee_cents"],
            line["payout_cents"],
            line["shadow_value_cents"],
            line["unpriced_observations"],
        )
        for line in statement["lines"]
    ]
    rows.append(
        (
            statement["period"],
            statement["supplier"],
            None,
            "total",
            None,
            statement["observations"],
            statement["revenue_cents"],
            statement["platform_fee_cents"],
            statement["payout_cents"],
            statement["shadow_value_cents"],
            statement["unpriced_observations"],
        )
    )
    return rows


INVOICE_HEADER: tuple[str, ...] = (
    "period",
    "consumer",
    "dataset",
    "supplier",
    "purpose",
    "tariff_version",
    "observations",
    "cents_per_million",
    "cents",
)


def invoice_rows(invoice: ConsumerInvoice) -> list[Row]:
    """One CSV row per invoice line, then a `total` row."""
    rows: list[Row] = [
        (
            invoice["period"],
            invoice["consumer"],
            line["dataset"],
            line["supplier"],
            line["purpose"],
            line["tariff_version"],
            line["observations"],
            line["cents_per_million"],
            line["cents"],
        )
        for line in invoice["lines"]
    ]
    rows.append(
        (
            invoice["period"],
            invoice["consumer"],
            None,
            None,
            "total",
            None,
            invoice["observations"],
            None,
            invoice["total_cents"],
        )
    )
    return rows


REPORT_HEADER: tuple[str, ...] = (
    "period",
    "row",
    "supplier",
    "revenue_cents",
    "platform_fee_cents",
    "payout_cents",
    *(f"observations_{p}" for p in PURPOSES),
    "shadow_value_cents",
    "unpriced_observations",
)


def report_rows(report: TransparencyReport) -> list[Row]:
    """One CSV row per supplier, then a `total` row: revenue = platform fee + payouts."""
    rows: list[Row] = []
    for slug, s in report["suppliers"].items():
        rows.append(
            (
                report["period"],
                "supplier",
                slug,
                s["revenue_cents"],
                s["platform_fee_cents"],
                s["payout_cents"],
                *(s["observations_by_purpose"][p] for p in PURPOSES),
                s["shadow_value_cents"],
                s["unpriced_observations"],
            )
        )
    rows.append(
        (
            report["period"],
            "total",
            None,
            report["revenue_cents"],
            report["platform_fee_cents"],
            sum(report["supplier_payouts_cents"].values()),
            *(report["purposes"][p]["observations"] for p in PURPOSES),
            report["shadow_value_cents"],
            report["unpriced_observations"],
        )
    )
    return rows


def to_csv(header: Sequence[str], rows: Iterable[Row]) -> str:
    """Render rows as CSV text with a header row; None as an empty cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
    return buffer.getvalue()


def _empty_supplier() -> SupplierResult:
    return {
        "payout_cents": 0,
        "revenue_cents": 0,
        "platform_fee_cents": 0,
        "observations": 0,
        "observations_by_purpose": dict.fromkeys(PURPOSES, 0),
        "shadow_value_cents": 0,
        "unpriced_observations": 0,
        "lines": [],
    }
