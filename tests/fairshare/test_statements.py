"""Statements, invoices and the report cut from a period's result; their CSV forms."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fairshare_seed import utc

from datahub.config import OmbudsmanSettings
from datahub.fairshare import statements
from datahub.fairshare.close import rate_period
from datahub.fairshare.money import format_cents
from datahub.storage.periods import RatedUsageRow, TariffRow


def _tariff(dataset: str, purpose: str, cents: int, shadow: int, fee_bp: int) -> TariffRow:
    return TariffRow(dataset, purpose, 1, utc(2026, 1), cents, shadow, fee_bp)


@pytest.fixture
def result() -> dict[str, Any]:
    """A commercial buyer, a public-interest department and anonymous open-data use."""
    fill = _tariff("fill-levels", "commercial", 50_000, 0, 1500)
    fill_pi = _tariff("fill-levels", "public_interest", 0, 20_000, 0)
    climate = _tariff("climate", "public_interest", 0, 10_000, 0)
    usage = [
        RatedUsageRow(
            "acme", "commercial", "commercial", "fill-levels", "commercial", "edg", fill, 1_234_567
        ),
        RatedUsageRow(
            "planning",
            "public_interest",
            "public_interest",
            "fill-levels",
            "commercial",
            "edg",
            fill_pi,
            400_000,
        ),
        RatedUsageRow(None, None, "public_interest", "climate", "open", "city", climate, 50_000),
    ]
    rated = rate_period(period="2026-11", currency="EUR", usage=usage)
    return {**rated, "hash": "h" * 64, "closed_at": "2026-12-01T00:05:00Z"}


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_a_statement_is_the_suppliers_part(result: dict[str, Any]) -> None:
    statement = statements.supplier_statement(result, "edg")
    assert statement["payout_cents"] == 52_469  # 61 728 less a 15 % fee of 9 259
    assert statement["shadow_value_cents"] == 8_000
    assert statement["hash"] == result["hash"]
    rows = _csv(
        statements.to_csv(statements.STATEMENT_HEADER, statements.statement_rows(statement))
    )
    assert [(r["dataset"], r["purpose"], r["payout_cents"]) for r in rows] == [
        ("fill-levels", "commercial", "52469"),
        ("fill-levels", "public_interest", "0"),
        ("", "total", "52469"),
    ]


def test_a_supplier_without_usage_gets_zeros(result: dict[str, Any]) -> None:
    statement = statements.supplier_statement(result, "nobody")
    assert statement["payout_cents"] == 0
    assert statement["lines"] == []
    assert statements.statement_rows(statement)[-1][3] == "total"


def test_an_invoice_is_the_consumers_part(result: dict[str, Any]) -> None:
    invoice = statements.consumer_invoice(result, "acme")
    assert invoice["total_cents"] == 61_728
    rows = _csv(statements.to_csv(statements.INVOICE_HEADER, statements.invoice_rows(invoice)))
    assert [r["cents"] for r in rows] == ["61728", "61728"]
    assert statements.consumer_invoice(result, "nobody")["total_cents"] == 0


def test_the_report_names_no_consumer(result: dict[str, Any]) -> None:
    report = statements.transparency_report(result, ombudsman=OmbudsmanSettings())
    text = repr(report) + statements.to_csv(
        statements.REPORT_HEADER, statements.report_rows(report)
    )
    assert "acme" not in text and "planning" not in text
    assert report["invoices"] == 2
    assert report["revenue_cents"] == report["platform_fee_cents"] + sum(
        report["supplier_payouts_cents"].values()
    )
    rows = _csv(statements.to_csv(statements.REPORT_HEADER, statements.report_rows(report)))
    assert [r["supplier"] for r in rows] == ["city", "edg", ""]
    assert rows[-1]["observations_public_interest"] == "450000"


def test_the_report_says_who_the_ombudsman_is(result: dict[str, Any]) -> None:
    assert (
        statements.transparency_report(result, ombudsman=OmbudsmanSettings())["ombudsman"] is None
    )
    office = OmbudsmanSettings(
        name="Ombudsstelle Datenwert und Datenethik",
        email="ombudsstelle@example.org",
        url="https://example.org/ombudsstelle",
    )
    assert statements.transparency_report(result, ombudsman=office)["ombudsman"] == {
        "name": "Ombudsstelle Datenwert und Datenethik",
        "email": "ombudsstelle@example.org",
        "url": "https://example.org/ombudsstelle",
        "postal_address": None,
    }


@pytest.mark.parametrize(
    ("cents", "text"),
    [(0, "0.00"), (5, "0.05"), (145_062, "1450.62"), (-101, "-1.01")],
)
def test_format_cents(cents: int, text: str) -> None:
    assert format_cents(cents) == text
