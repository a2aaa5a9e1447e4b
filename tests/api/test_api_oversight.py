"""The ombudsman reads everything and changes nothing; every change through the API
leaves exactly one audit entry. Both walk the routes of the OpenAPI document, so a route
added later is covered, or the test names it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from api_helpers import Seed
from fairshare_seed import FairShareSeed, utc
from fastapi.testclient import TestClient

from datahub.config import AlertSettings
from datahub.domain import Location
from datahub.fairshare.close import close_period
from datahub.ops import rules
from datahub.ops.rule import Kind, Operator, Rule
from datahub.storage import alerts, dead_letters
from datahub.storage import audit as log
from datahub.storage.dead_letters import DeadLetterRow

EUI = "70B3D57E00000001"
NOW = datetime.now(UTC).replace(microsecond=0)
CHANGING = {"post", "put", "patch", "delete"}


@dataclass(frozen=True)
class World:
    admin: dict[str, str]
    ombudsman: dict[str, str]
    letter_id: int
    alarm_id: int
    seq: int


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def world(conn: psycopg.Connection) -> World:
    """A device with readings, a closed period, an alert rule with an open alarm, a dead
    letter, an audit entry; an administrator's key and the ombudsman's."""
    seed = Seed(conn)
    seed.device(EUI, location=Location(51.51, 7.46))
    seed.readings(EUI, "temperature", {NOW - timedelta(hours=h): 10.0 + h for h in range(3)})
    fs = FairShareSeed(conn)
    fs.consumer("hub-admin", purpose="public_interest")
    fs.consumer("ombudsstelle", purpose="public_interest")
    fs.dataset("dew21-meters", supplier="dew21")
    fs.use("hub-admin", "dew21-meters", 1_000, utc(2026, 11, 3))
    close_period(conn, period="2026-11", now=utc(2026, 12, 1, 1), currency="EUR", actor="cli:t")
    rule = rules.create_rule(
        conn,
        rule=Rule(name="hot", kind=Kind.THRESHOLD, metric="temperature",
                  operator=Operator.ABOVE, open_value=30.0),
        alerts_settings=AlertSettings(),
        actor="cli:test",
    )  # fmt: skip
    alarm_id = alerts.insert_alarm(
        conn,
        rule_id=rule.id,
        subject=EUI,
        device_id=seed.ids[EUI],
        opened_at=NOW,
        value=31.0,
        notified=False,
        detail="31 > 30",
    )
    dead_letters.insert_dead_letters(
        conn,
        letters=[DeadLetterRow(NOW, "ttn", "v3/x/up", "envelope", "not_json", "bad", b"{")],
        head_bytes=1024,
    )
    (letter,) = dead_letters.list_dead_letters(conn, limit=1)
    return World(
        admin=_auth(fs.key("hub-admin", "read", "admin")),
        ombudsman=_auth(fs.key("ombudsstelle", "read", "ombudsman")),
        letter_id=letter.id,
        alarm_id=alarm_id,
        seq=log.list_entries(conn, limit=1, newest_first=True)[0].seq,
    )


def operations(client: TestClient) -> list[tuple[str, str]]:
    """Every (method, path) of the OpenAPI document."""
    paths = client.get("/openapi.json").json()["paths"]
    return sorted((method, path) for path, ops in paths.items() for method in ops)


# What a reading route is asked, path parameters filled in and required query parameters.
READ_ARGUMENTS: dict[str, Callable[[World], tuple[str, dict[str, str]]]] = {
    "/v1/devices/{dev_eui}": lambda w: (f"/v1/devices/{EUI}", {}),
    "/v1/devices/{dev_eui}/readings": lambda w: (f"/v1/devices/{EUI}/readings", {}),
    "/v1/readings/aggregate": lambda w: (
        "/v1/readings/aggregate",
        {"metric": "temperature", "city": "dortmund"},
    ),
    "/v1/fairshare/report/{period}": lambda w: ("/v1/fairshare/report/2026-11", {}),
    "/v1/fairshare/statements/{period}": lambda w: (
        "/v1/fairshare/statements/2026-11",
        {"supplier": "dew21"},
    ),
    "/v1/fairshare/invoices/{period}": lambda w: (
        "/v1/fairshare/invoices/2026-11",
        {"consumer": "hub-admin"},
    ),
    "/v1/admin/consumers/{slug}/keys": lambda w: ("/v1/admin/consumers/hub-admin/keys", {}),
    "/v1/admin/audit/{seq}": lambda w: (f"/v1/admin/audit/{w.seq}", {}),
    "/v1/admin/alert-rules/{name}": lambda w: ("/v1/admin/alert-rules/hot", {}),
    "/v1/admin/dead-letters/{letter_id}": lambda w: (f"/v1/admin/dead-letters/{w.letter_id}", {}),
    "/v1/operations/devices/{dev_eui}": lambda w: (f"/v1/operations/devices/{EUI}", {}),
    "/sta/v1.1/{path}": lambda w: ("/sta/v1.1/Things", {}),
    "/v1/bulk/{dataset}/{name}": lambda w: ("/v1/bulk/dew21/2026-11.csv.gz", {}),
}
# Reading routes whose world here holds nothing to read: 404, and never 401 or 403.
NOTHING_TO_READ = {
    "/v1/bulk/{dataset}/{name}": "bulk files are written by `datahub opendata bulk` "
    "(tests/opendata); none here",
}


def test_the_ombudsman_reads_every_reading_route(client: TestClient, world: World) -> None:
    for method, template in operations(client):
        if method != "get":
            continue
        example = READ_ARGUMENTS.get(template)
        path, params = example(world) if example is not None else (template, {})
        assert "{" not in path, f"READ_ARGUMENTS needs an example of {template}"
        response = client.get(path, params=params, headers=world.ombudsman)
        expected = 404 if template in NOTHING_TO_READ else 200
        assert response.status_code == expected, (template, response.text)


def test_the_ombudsman_changes_nothing(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    before = log.count_entries(conn)
    for method, template in operations(client):
        if method not in CHANGING:
            continue
        path = template.replace("{alarm_id}", str(world.alarm_id)).replace("{name}", "hot")
        for name in ("slug", "prefix", "consumer", "dataset"):
            path = path.replace(f"{{{name}}}", "dew21")
        response = client.request(method, path, json={}, headers=world.ombudsman)
        assert response.status_code == 403, (method, template, response.text)
        assert response.json()["error"] == "Forbidden"
    assert log.count_entries(conn) == before


def test_the_ombudsman_reads_any_statement_invoice_and_the_whole_ledger(
    client: TestClient, world: World
) -> None:
    ledger = client.get(
        "/v1/fairshare/ledger",
        params={"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
        headers=world.ombudsman,
    ).json()
    assert [
        (r["consumer"], r["dataset"], r["period"], r["observations"]) for r in ledger["rows"]
    ] == [("hub-admin", "dew21-meters", "2026-11", 1_000)]
    invoice = client.get(
        "/v1/fairshare/invoices/2026-11", params={"consumer": "hub-admin"}, headers=world.ombudsman
    ).json()
    assert invoice["consumer"] == "hub-admin"


def test_a_key_is_never_both_admin_and_ombudsman(client: TestClient, world: World) -> None:
    response = client.post(
        "/v1/admin/consumers/ombudsstelle/keys",
        json={"scopes": ["admin", "ombudsman"]},
        headers=world.admin,
    )
    assert response.status_code == 400 and "ombudsman" in response.json()["detail"]


# Each change: its request, and the action of the one audit entry it leaves. In order: a
# step may use what an earlier one made.
def _changes(world: World) -> list[tuple[str, str, str, Any, str]]:
    licence = {"id": "CC-BY-4.0", "name": "CC BY 4.0", "url": "https://creativecommons.org/"}
    return [
        ("post", "/v1/admin/suppliers", "/v1/admin/suppliers",
         {"slug": "tbs", "name": "TBS", "kind": "waste_company"}, "supplier.add"),
        ("post", "/v1/admin/datasets", "/v1/admin/datasets",
         {"slug": "tbs-bins", "supplier": "tbs", "name": "Bins", "licence_class": "commercial",
          "licence": licence, "attribution": "TBS"}, "dataset.add"),
        ("patch", "/v1/admin/datasets/{slug}", "/v1/admin/datasets/tbs-bins",
         {"name": "TBS bins"}, "dataset.update"),
        ("post", "/v1/admin/consumers", "/v1/admin/consumers",
         {"slug": "uni", "name": "Uni", "purpose": "research"}, "consumer.add"),
        ("patch", "/v1/admin/consumers/{slug}", "/v1/admin/consumers/uni",
         {"name": "Uni Dortmund"}, "consumer.update"),
        ("post", "/v1/admin/consumers/{slug}/keys", "/v1/admin/consumers/uni/keys",
         {"scopes": ["read"]}, "key.create"),
        ("delete", "/v1/admin/keys/{prefix}", "/v1/admin/keys/{new_prefix}", None,
         "key.revoke"),
        ("put", "/v1/admin/grants/{consumer}/{dataset}", "/v1/admin/grants/uni/tbs-bins", None,
         "grant.add"),
        ("delete", "/v1/admin/grants/{consumer}/{dataset}", "/v1/admin/grants/uni/tbs-bins",
         None, "grant.revoke"),
        ("post", "/v1/admin/tariffs", "/v1/admin/tariffs",
         {"dataset": "tbs-bins", "purpose": "research", "cents_per_million": 1000,
          "shadow_cents_per_million": 1000, "platform_fee_basis_points": 100}, "tariff.add"),
        ("post", "/v1/admin/alert-rules", "/v1/admin/alert-rules",
         {"name": "cold", "kind": "threshold", "metric": "temperature", "operator": "below",
          "open_value": -5, "webhook_url": "https://example.org/hook"}, "alert_rule.add"),
        ("patch", "/v1/admin/alert-rules/{name}", "/v1/admin/alert-rules/cold",
         {"hold_s": 600}, "alert_rule.update"),
        ("delete", "/v1/admin/alert-rules/{name}", "/v1/admin/alert-rules/cold", None,
         "alert_rule.delete"),
        ("post", "/v1/operations/alarms/{alarm_id}/acknowledge",
         f"/v1/operations/alarms/{world.alarm_id}/acknowledge", None, "alarm.acknowledge"),
    ]  # fmt: skip


def test_every_change_through_the_api_leaves_exactly_one_audit_entry(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    changes = _changes(world)
    documented = {(m, p) for m, p in operations(client) if m in CHANGING}
    assert {(m, template) for m, template, *_ in changes} == documented
    prefix, secrets = "", []
    for method, template, path, body, action in changes:
        before = log.count_entries(conn)
        response = client.request(
            method, path.replace("{new_prefix}", prefix), json=body, headers=world.admin
        )
        assert response.status_code < 300, (template, response.text)
        answer = response.json() if response.content else {}
        prefix = answer.get("prefix", prefix)
        secrets += [answer[k] for k in ("key", "webhook_secret") if answer.get(k)]
        assert log.count_entries(conn) == before + 1, template
        (entry,) = log.list_entries(conn, limit=1, newest_first=True)
        assert (entry.action, entry.actor[:4]) == (action, "key:")
        assert not any(s in f"{entry.before}{entry.after}" for s in secrets), template
    assert len(secrets) == 2  # the key and the webhook's secret, neither recorded
    listed = client.get("/v1/admin/audit", params={"after": world.seq}, headers=world.ombudsman)
    assert [e["action"] for e in listed.json()["items"]] == [c[4] for c in changes]
    verdict = client.get("/v1/admin/audit/verify", headers=world.ombudsman).json()
    assert verdict["intact"] is True
