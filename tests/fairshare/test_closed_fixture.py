"""A period closed by an earlier version of the code: its bytes and hash never change.

`fixtures/closed-2026-11.json` holds the canonical JSON and SHA-256 of a period closed on
the usage below, and the statements, invoices and report cut from it, as that version
wrote them. Closing the same usage today must give the same bytes and the same hash, and
the views the same JSON: a change of the code may never change a closed period.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fairshare_seed import FairShareSeed, utc

from datahub.config import OmbudsmanSettings
from datahub.fairshare import statements
from datahub.fairshare.close import canonical_json, close_period, get_closed
from datahub.storage import periods

FIXTURE = Path(__file__).parent / "fixtures" / "closed-2026-11.json"
CLOSED_AT = utc(2026, 12, 1, 0, 5)


def seed_period(fs: FairShareSeed) -> None:
    """Usage of every kind a result tells apart, in amounts that leave remainders."""
    fs.dataset("edg-fill-levels", supplier="edg", licence_class="commercial")
    fs.dataset("edg-unpriced", supplier="edg", licence_class="commercial")
    fs.dataset("dsw-parking", supplier="dsw21", licence_class="restricted")
    fs.dataset("city-climate", supplier="city", licence_class="open")
    fs.consumer("acme", purpose="commercial")
    fs.consumer("uni-do", purpose="research")
    fs.consumer("city-planning", purpose="public_interest", supplier="city")
    fs.tariff("edg-fill-levels", "commercial", cents=50_000, shadow=50_000, fee_bp=1000)
    fs.tariff(
        "edg-fill-levels",
        "commercial",
        cents=80_001,
        shadow=50_000,
        fee_bp=1750,
        version=2,
        valid_from=utc(2026, 11, 15),
    )
    fs.tariff("edg-fill-levels", "research", cents=7_777, shadow=30_000, fee_bp=333)
    fs.tariff("edg-fill-levels", "public_interest", cents=0, shadow=20_000)
    fs.tariff("dsw-parking", "commercial", cents=123_457, shadow=0, fee_bp=2500)
    fs.tariff("dsw-parking", "research", cents=0, shadow=45_679)
    fs.tariff("city-climate", "public_interest", cents=0, shadow=10_000)
    fs.tariff("city-climate", "commercial", cents=999, shadow=10_001)
    fs.use("acme", "edg-fill-levels", 1_000_003, utc(2026, 10, 30))  # open from October
    fs.use("acme", "edg-fill-levels", 123_457, utc(2026, 11, 3))
    fs.use("acme", "edg-fill-levels", 654_321, utc(2026, 11, 20))
    fs.use("acme", "dsw-parking", 33_333, utc(2026, 11, 21, 13, 7))
    fs.use("acme", "city-climate", 700_001, utc(2026, 11, 4))
    fs.use("acme", "edg-unpriced", 77, utc(2026, 11, 16))
    fs.use("acme", "edg-fill-levels", 5_555, utc(2026, 11, 22), purpose="research")
    fs.use("uni-do", "edg-fill-levels", 2_345_678, utc(2026, 11, 5))
    fs.use("uni-do", "dsw-parking", 98_765, utc(2026, 11, 6))
    fs.use("city-planning", "edg-fill-levels", 2_000_001, utc(2026, 11, 5))
    fs.use("city-planning", "city-climate", 1, utc(2026, 11, 30, 23, 59))
    fs.use(None, "city-climate", 300_007, utc(2026, 11, 6))
    fs.use(None, "edg-fill-levels", 11, utc(2026, 11, 7))
    fs.use("acme", "edg-fill-levels", 9, utc(2026, 12, 1))  # December: stays open


SUPPLIERS = ("city", "dsw21", "edg", "none")
CONSUMERS = ("acme", "city-planning", "uni-do", "none")


def views(result: dict[str, Any]) -> dict[str, Any]:
    """Every statement, invoice and the report of a published result, as JSON and CSV."""
    # The ombudsman is who holds the office now, named beside the closed period, not in it.
    report = {
        k: v
        for k, v in statements.transparency_report(result, ombudsman=OmbudsmanSettings()).items()
        if k != "ombudsman"
    }
    return {
        "statements": {s: statements.supplier_statement(result, s) for s in SUPPLIERS},
        "invoices": {c: statements.consumer_invoice(result, c) for c in CONSUMERS},
        "report": report,
        "csv": {
            **{
                f"statement {s}": statements.to_csv(
                    statements.STATEMENT_HEADER,
                    statements.statement_rows(statements.supplier_statement(result, s)),
                )
                for s in SUPPLIERS
            },
            **{
                f"invoice {c}": statements.to_csv(
                    statements.INVOICE_HEADER,
                    statements.invoice_rows(statements.consumer_invoice(result, c)),
                )
                for c in CONSUMERS
            },
            "report": statements.to_csv(statements.REPORT_HEADER, statements.report_rows(report)),
        },
    }


@pytest.fixture
def fixture() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_closing_gives_the_bytes_and_hash_of_the_earlier_close(
    conn: psycopg.Connection, fixture: dict[str, Any]
) -> None:
    seed_period(FairShareSeed(conn))
    # As that version recorded it: it did not tell a supplier's own use apart (here
    # city-planning, acting for the city, on city-climate).
    conn.execute("UPDATE usage SET own_use = false")
    result = close_period(conn, period="2026-11", now=CLOSED_AT, currency="EUR", actor="cli:test")
    assert canonical_json(result).decode() == fixture["canonical_json"]
    assert result["hash"] == fixture["hash"]
    assert json.loads(json.dumps(views(result))) == fixture["views"]


def test_the_stored_period_reads_as_it_was_closed(
    conn: psycopg.Connection, fixture: dict[str, Any]
) -> None:
    periods.insert_period(
        conn,
        period="2026-11",
        closed_at=CLOSED_AT,
        hash=fixture["hash"],
        result=json.loads(fixture["canonical_json"]),
    )
    result = get_closed(conn, period="2026-11")
    assert canonical_json(result).decode() == fixture["canonical_json"]
    assert result["hash"] == fixture["hash"]
    assert json.loads(json.dumps(views(result))) == fixture["views"]
