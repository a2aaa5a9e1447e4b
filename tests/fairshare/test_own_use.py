"""A supplier's own use of its own datasets: recorded, shown in its statement as own use,
never invoiced."""

from __future__ import annotations

import psycopg
from fairshare_seed import FairShareSeed, utc

from datahub.config import OmbudsmanSettings
from datahub.fairshare import statements
from datahub.fairshare.close import close_period


def test_own_use_is_recorded_shown_and_never_invoiced(conn: psycopg.Connection) -> None:
    fs = FairShareSeed(conn)
    fs.dataset("edg-fill-levels", supplier="edg", licence_class="commercial")
    fs.consumer("edg-ops", purpose="commercial", supplier="edg")  # acts for the supplier
    fs.consumer("acme", purpose="commercial")
    fs.tariff("edg-fill-levels", "commercial", cents=400_000, shadow=50_000, fee_bp=1500)
    fs.use("edg-ops", "edg-fill-levels", 1_000_000, utc(2026, 11, 3))
    fs.use("acme", "edg-fill-levels", 500_000, utc(2026, 11, 4))

    recorded = conn.execute(
        "SELECT c.slug, u.own_use FROM usage u JOIN consumer c ON c.id = u.consumer_id "
        "ORDER BY u.id"
    ).fetchall()
    result = close_period(
        conn, period="2026-11", now=utc(2026, 12, 1, 0, 5), currency="EUR", actor="cli:test"
    )
    statement = statements.supplier_statement(result, "edg")
    report = statements.transparency_report(result, ombudsman=OmbudsmanSettings())

    assert recorded == [("edg-ops", True), ("acme", False)]
    assert [i["consumer"] for i in result["invoices"]] == ["acme"]
    assert statements.consumer_invoice(result, "edg-ops")["total_cents"] == 0
    assert (result["revenue_cents"], result["platform_fee_cents"]) == (200_000, 30_000)
    assert result["supplier_payouts_cents"] == {"edg": 170_000}
    assert (result["observations"], result["own_use_observations"]) == (1_500_000, 1_000_000)
    assert result["shadow_value_cents"] == 0  # own use is not free use of someone else's
    assert (statement["observations"], statement["own_use_observations"]) == (
        1_500_000,
        1_000_000,
    )
    assert [
        (line["observations"], line["revenue_cents"], line.get("own_use", False))
        for line in statement["lines"]
    ] == [(500_000, 200_000, False), (1_000_000, 0, True)]
    assert [t["observations"] for t in result["tariffs"]] == [500_000]
    assert report["own_use_observations"] == 1_000_000
    assert all(result["conservation"].values())
    rows = statements.statement_rows(statement)
    assert [row[3] for row in rows] == ["commercial", statements.OWN_USE, "total"]


def test_a_period_without_own_use_names_none(conn: psycopg.Connection) -> None:
    fs = FairShareSeed(conn)
    fs.dataset("edg-fill-levels", supplier="edg", licence_class="commercial")
    fs.consumer("acme", purpose="commercial")
    fs.use("acme", "edg-fill-levels", 7, utc(2026, 11, 4))

    result = close_period(
        conn, period="2026-11", now=utc(2026, 12, 1, 0, 5), currency="EUR", actor="cli:test"
    )

    assert "own_use_observations" not in result
    assert "own_use_observations" not in result["suppliers"]["edg"]
    assert all("own_use" not in line for line in result["suppliers"]["edg"]["lines"])
