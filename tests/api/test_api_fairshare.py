"""/v1/fairshare/…: who sees which statement, invoice and usage; the public report."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import psycopg
import pytest
from fairshare_seed import FairShareSeed, utc
from fastapi.testclient import TestClient

from datahub.fairshare.close import close_period


@dataclass(frozen=True)
class Keys:
    acme: str  # a commercial consumer
    planning: str  # a city department, public interest
    edg: str  # the waste company's own staff: a consumer acting for supplier `edg`
    admin: str


@pytest.fixture
def keys(conn: psycopg.Connection) -> Keys:
    """November 2026 closed: acme buys fill levels, planning reads them and open climate data."""
    fs = FairShareSeed(conn)
    fs.dataset("edg-fill-levels", supplier="edg", licence_class="commercial")
    fs.dataset("city-climate", supplier="city", licence_class="open")
    fs.consumer("acme", purpose="commercial")
    fs.consumer("city-planning", purpose="public_interest")
    fs.consumer("edg-staff", purpose="public_interest", supplier="edg")
    fs.consumer("hub-admin", purpose="public_interest")
    fs.tariff("edg-fill-levels", "commercial", cents=50_000, fee_bp=1000)
    fs.tariff("edg-fill-levels", "public_interest", cents=0, shadow=20_000)
    fs.tariff("city-climate", "public_interest", cents=0, shadow=10_000)
    fs.use("acme", "edg-fill-levels", 2_000_000, utc(2026, 11, 3, 10))
    fs.use("acme", "edg-fill-levels", 1_000, utc(2026, 11, 3, 11))
    fs.use("city-planning", "edg-fill-levels", 500_000, utc(2026, 11, 4))
    fs.use("city-planning", "city-climate", 100_000, utc(2026, 11, 5))
    fs.use(None, "city-climate", 7_000, utc(2026, 11, 5))
    close_period(conn, period="2026-11", now=utc(2026, 12, 1, 1), currency="EUR", actor="cli:test")
    fs.use("acme", "edg-fill-levels", 3_000, utc(2026, 12, 2))  # the open period
    return Keys(
        acme=fs.key("acme"),
        planning=fs.key("city-planning"),
        edg=fs.key("edg-staff"),
        admin=fs.key("hub-admin", "read", "admin"),
    )


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_anyone_lists_the_closed_periods(client: TestClient, keys: Keys) -> None:
    response = client.get("/v1/fairshare/periods")
    assert response.status_code == 200
    (period,) = response.json()["items"]
    assert period["period"] == "2026-11"
    assert len(period["hash"]) == 64


def test_the_report_is_public_and_names_no_consumer(client: TestClient, keys: Keys) -> None:
    response = client.get("/v1/fairshare/report/2026-11")
    assert response.status_code == 200
    report = response.json()
    assert report["revenue_cents"] == 100_050
    assert report["platform_fee_cents"] == 10_005
    assert report["supplier_payouts_cents"] == {"city": 0, "edg": 90_045}
    assert report["suppliers"]["edg"]["shadow_value_cents"] == 10_000
    assert report["suppliers"]["city"]["shadow_value_cents"] == 1_070
    assert report["purposes"]["public_interest"]["consumers"] == 1
    assert all(report["conservation"].values())
    for consumer in ("acme", "city-planning", "edg-staff", "hub-admin"):
        assert consumer not in response.text


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        pytest.param("/v1/fairshare/report/2026-11?format=csv", {}, id="format"),
        pytest.param("/v1/fairshare/report/2026-11", {"Accept": "text/csv"}, id="accept"),
    ],
)
def test_the_report_as_csv(
    client: TestClient, keys: Keys, url: str, headers: dict[str, str]
) -> None:
    response = client.get(url, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = _csv(response.text)
    assert [(r["row"], r["supplier"]) for r in rows] == [
        ("supplier", "city"),
        ("supplier", "edg"),
        ("total", ""),
    ]
    total = rows[-1]
    assert int(total["revenue_cents"]) == int(total["platform_fee_cents"]) + int(
        total["payout_cents"]
    )


@pytest.mark.parametrize(
    ("period", "status"),
    [
        pytest.param("2026-10", 404, id="not-closed"),
        pytest.param("2026-13", 400, id="no-such-month"),
        pytest.param("november", 400, id="malformed"),
    ],
)
def test_a_period_that_is_not_closed_has_no_report(
    client: TestClient, keys: Keys, period: str, status: int
) -> None:
    response = client.get(f"/v1/fairshare/report/{period}")
    assert response.status_code == status
    assert response.json()["error"] == {400: "BadRequest", 404: "NotFound"}[status]


def test_a_supplier_sees_its_own_statement(client: TestClient, keys: Keys) -> None:
    response = client.get("/v1/fairshare/statements/2026-11", headers=_auth(keys.edg))
    assert response.status_code == 200
    statement = response.json()
    assert statement["supplier"] == "edg"
    assert statement["payout_cents"] == 90_045
    assert statement["observations_by_purpose"]["public_interest"] == 500_000
    assert sum(line["payout_cents"] for line in statement["lines"]) == 90_045


@pytest.mark.parametrize(
    ("who", "query", "status"),
    [
        pytest.param("edg", "?supplier=city", 403, id="another-suppliers"),
        pytest.param("acme", "", 403, id="a-consumer-acting-for-no-supplier"),
        pytest.param("acme", "?supplier=edg", 403, id="a-consumer-naming-one"),
        pytest.param(None, "", 401, id="anonymous"),
        pytest.param(None, "?supplier=edg", 401, id="anonymous-naming-one"),
        pytest.param("admin", "", 400, id="admin-names-none"),
        pytest.param("admin", "?supplier=nobody", 404, id="admin-unknown-supplier"),
    ],
)
def test_statements_are_not_shown_to_others(
    client: TestClient, keys: Keys, who: str | None, query: str, status: int
) -> None:
    headers = _auth(getattr(keys, who)) if who else {}
    response = client.get(f"/v1/fairshare/statements/2026-11{query}", headers=headers)
    assert response.status_code == status
    assert "payout" not in response.text


def test_an_administrator_sees_any_statement(client: TestClient, keys: Keys) -> None:
    response = client.get(
        "/v1/fairshare/statements/2026-11?supplier=city&format=csv", headers=_auth(keys.admin)
    )
    assert response.status_code == 200
    rows = _csv(response.text)
    assert {r["supplier"] for r in rows} == {"city"}
    assert rows[-1]["purpose"] == "total"
    assert rows[-1]["shadow_value_cents"] == "1070"


def test_a_consumer_sees_its_own_invoice(client: TestClient, keys: Keys) -> None:
    response = client.get("/v1/fairshare/invoices/2026-11", headers=_auth(keys.acme))
    assert response.status_code == 200
    invoice = response.json()
    assert invoice["consumer"] == "acme"
    assert invoice["total_cents"] == 100_050
    assert sum(line["cents"] for line in invoice["lines"]) == 100_050

    response = client.get("/v1/fairshare/invoices/2026-11?format=csv", headers=_auth(keys.acme))
    rows = _csv(response.text)
    assert rows[-1]["cents"] == "100050"


def test_a_consumer_without_usage_gets_an_empty_invoice(client: TestClient, keys: Keys) -> None:
    response = client.get("/v1/fairshare/invoices/2026-11", headers=_auth(keys.edg))
    assert response.status_code == 200
    assert response.json()["total_cents"] == 0
    assert response.json()["lines"] == []


@pytest.mark.parametrize(
    ("who", "query", "status"),
    [
        pytest.param("acme", "?consumer=city-planning", 403, id="another-consumers"),
        pytest.param("planning", "?consumer=acme", 403, id="public-interest-naming-another"),
        pytest.param(None, "", 401, id="anonymous"),
        pytest.param("admin", "?consumer=nobody", 404, id="admin-unknown-consumer"),
    ],
)
def test_invoices_are_not_shown_to_others(
    client: TestClient, keys: Keys, who: str | None, query: str, status: int
) -> None:
    headers = _auth(getattr(keys, who)) if who else {}
    response = client.get(f"/v1/fairshare/invoices/2026-11{query}", headers=headers)
    assert response.status_code == status
    assert "100050" not in response.text


def test_an_administrator_sees_any_invoice(client: TestClient, keys: Keys) -> None:
    response = client.get("/v1/fairshare/invoices/2026-11?consumer=acme", headers=_auth(keys.admin))
    assert response.status_code == 200
    assert response.json()["total_cents"] == 100_050


def test_a_consumer_sees_its_own_usage_open_period_included(client: TestClient, keys: Keys) -> None:
    response = client.get(
        "/v1/fairshare/usage",
        params={"from": "2026-11-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"},
        headers=_auth(keys.acme),
    )
    assert response.status_code == 200
    usage = response.json()
    assert usage["consumer"] == "acme"
    assert usage["from"] == "2026-11-01T00:00:00Z"
    assert usage["observations"] == 2_004_000
    assert [(d["day"], d["observations"], d["requests"]) for d in usage["days"]] == [
        ("2026-11-03", 2_001_000, 2),
        ("2026-12-02", 3_000, 1),
    ]


@pytest.mark.parametrize(
    ("who", "params", "status"),
    [
        pytest.param(None, {}, 401, id="anonymous"),
        pytest.param(
            "acme",
            {"from": "2026-12-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"},
            400,
            id="backwards",
        ),
        pytest.param(
            "acme",
            {"from": "2024-01-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"},
            400,
            id="too-long",
        ),
        pytest.param("acme", {"consumer": "city-planning"}, 422, id="no-such-parameter"),
    ],
)
def test_usage_refusals(
    client: TestClient, keys: Keys, who: str | None, params: dict[str, str], status: int
) -> None:
    headers = _auth(getattr(keys, who)) if who else {}
    response = client.get("/v1/fairshare/usage", params=params, headers=headers)
    assert response.status_code == status
