"""The operator's API on a real database: what the ingest could not place, health and
coverage scoped by key, alert rules refused with the reason."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from api_helpers import Seed
from fastapi.testclient import TestClient
from test_api_admin import make_key

from datahub.config import HealthSettings, load_settings
from datahub.domain import City, DecodeStatus, GatewayReception, Location, Radio, Uplink
from datahub.errors import ConfigError
from datahub.ops.refresh import HealthRefresher
from datahub.storage import dead_letters, uplinks
from datahub.storage.dead_letters import DeadLetterRow
from datahub.storage.uplinks import UplinkRow

STRANGER = "70B3D57ED0000001"
OURS, THEIRS = "0004A30B00000001", "0004A30B00000002"


def uplink(now: datetime, dev_eui: str, f_cnt: int, minutes_ago: int, *gateways: str) -> Uplink:
    return Uplink(
        dev_eui=dev_eui,
        city=City.DORTMUND,
        source="ttn-dortmund",
        received_at=now - timedelta(minutes=minutes_ago),
        f_port=1,
        f_cnt=f_cnt,
        payload=bytes([f_cnt, 0xAB]),
        dedup_key=os.urandom(16),
        radio=Radio(
            tuple(GatewayReception(g, -100.0 + i, 3.0) for i, g in enumerate(gateways)), 7, 125_000
        ),
    )


@pytest.fixture
def world(conn: psycopg.Connection, seed: Seed) -> dict[str, dict[str, str]]:
    # The API judges a device's status against the clock of the request: the world is
    # built relative to the time the test runs, not when the module was imported.
    now = datetime.now(UTC).replace(microsecond=0)
    seed.device(OURS, supplier="dew21", location=Location(51.51, 7.46))
    seed.device(
        THEIRS, supplier="stadtwerke-schwerte", city=City.SCHWERTE, location=Location(51.44, 7.56)
    )
    rows = [
        UplinkRow(uplink(now, STRANGER, 1, 50, "gw-1"), None, DecodeStatus.UNKNOWN_DEVICE),
        UplinkRow(uplink(now, STRANGER, 2, 40, "gw-2", "gw-1"), None, DecodeStatus.UNKNOWN_DEVICE),
        UplinkRow(
            uplink(now, OURS, 7, 30, "gw-1"),
            seed.ids[OURS],
            DecodeStatus.FAILED,
            "climate@1",
            "too short",
        ),
        UplinkRow(
            uplink(now, OURS, 8, 20, "gw-1"), seed.ids[OURS], DecodeStatus.DECODED, "climate@1"
        ),
        UplinkRow(uplink(now, THEIRS, 3, 10, "gw-9"), seed.ids[THEIRS], DecodeStatus.NO_DECODER),
    ]
    uplinks.insert_uplinks(conn, rows=rows)
    seed.seen(OURS, now - timedelta(minutes=20))
    seed.seen(THEIRS, now - timedelta(minutes=10))
    dead_letters.insert_dead_letters(
        conn,
        letters=[
            DeadLetterRow(
                now,
                "ttn-dortmund",
                "v3/x/up",
                "envelope",
                "bad_envelope",
                "not JSON",
                "{ré".encode(),
            ),
            DeadLetterRow(
                now, "ttn-dortmund", "v3/x/up", "envelope", "bad_envelope", "binary", b"\xff\x00"
            ),
            # Kept as its head: 4 of its 9 bytes, cut inside the 2-byte "é".
            DeadLetterRow(
                now, "ttn-dortmund", "v3/x/up", "envelope", "bad_envelope", "long", LONG_BODY
            ),
        ],
        head_bytes=4,
    )
    HealthRefresher(HealthSettings()).refresh_due(conn)
    return {
        "admin": make_key(conn, "ops", purpose="public_interest", scopes=("read", "admin")),
        "supplier": make_key(conn, "dew21-ops", purpose="public_interest", scopes=("read",)),
        "reader": make_key(conn, "reader", purpose="research", scopes=("read",)),
    }


@pytest.fixture
def supplier_key(conn: psycopg.Connection, world: dict[str, dict[str, str]]) -> dict[str, str]:
    conn.execute(
        "UPDATE consumer SET supplier_id = (SELECT id FROM supplier WHERE slug = 'dew21')"
        " WHERE slug = 'dew21-ops'"
    )
    return world["supplier"]


LONG_BODY = '{"aé":1}'.encode()


def test_unknown_devices_decode_failures_and_dead_letters(
    client: TestClient, world: dict[str, dict[str, str]]
) -> None:
    unknown = client.get("/v1/admin/unknown-devices", headers=world["admin"]).json()["items"]
    assert [(u["dev_eui"], u["uplinks"], u["gateways"], u["registered"]) for u in unknown] == [
        (STRANGER, 2, ["gw-1", "gw-2"], False)
    ]
    assert unknown[0]["last_payload_hex"] == "02ab"
    failures = client.get("/v1/admin/decode-failures", headers=world["admin"]).json()["items"]
    assert [(f["profile"], f["status"], f["uplinks"], f["last_error"]) for f in failures] == [
        ("climate", "failed", 1, "too short"),
        ("climate", "no_decoder", 1, None),
    ]
    letters = client.get(
        "/v1/admin/dead-letters", params={"limit": 2}, headers=world["admin"]
    ).json()
    assert [i["detail"] for i in letters["items"]] == ["long", "binary"]
    more = client.get(
        "/v1/admin/dead-letters", params={"cursor": letters["next_cursor"]}, headers=world["admin"]
    ).json()
    assert [i["detail"] for i in more["items"]] == ["not JSON"]
    text = client.get(
        f"/v1/admin/dead-letters/{more['items'][0]['id']}", headers=world["admin"]
    ).json()
    assert (text["body_hex"], text["body_text"]) == ("7b72c3a9", "{ré")
    binary = client.get(
        f"/v1/admin/dead-letters/{letters['items'][1]['id']}", headers=world["admin"]
    )
    assert (binary.json()["body_hex"], binary.json()["body_text"]) == ("ff00", None)
    long = client.get(
        f"/v1/admin/dead-letters/{letters['items'][0]['id']}", headers=world["admin"]
    ).json()
    assert (long["body_hex"], long["body_text"]) == ("7b2261c3", '{"a')
    assert (long["body_kept"], long["body_length"]) == (4, len(LONG_BODY))
    assert long["body_sha256"] == hashlib.sha256(LONG_BODY).hexdigest()
    assert client.get("/v1/admin/dead-letters/999999", headers=world["admin"]).status_code == 404


def test_a_supplier_key_sees_its_own_devices_and_a_reader_none(
    client: TestClient, world: dict[str, dict[str, str]], supplier_key: dict[str, str]
) -> None:
    everything = client.get("/v1/operations/devices", headers=world["admin"]).json()
    assert {d["dev_eui"] for d in everything["items"]} == {OURS, THEIRS}
    own = client.get("/v1/operations/devices", headers=supplier_key).json()
    assert [d["dev_eui"] for d in own["items"]] == [OURS]
    assert own["items"][0]["status"] == "late"  # 20 min after its last uplink, interval 10 min
    assert client.get(f"/v1/operations/devices/{THEIRS}", headers=supplier_key).status_code == 404
    gateways = client.get("/v1/operations/gateways", headers=supplier_key).json()["items"]
    assert [g["gateway_id"] for g in gateways] == ["gw-1"]
    coverage = client.get("/v1/operations/coverage", headers=supplier_key).json()
    assert coverage["type"] == "FeatureCollection"
    (feature,) = coverage["features"]
    assert feature["geometry"] == {"type": "Point", "coordinates": [7.46, 51.51]}
    assert feature["properties"]["best_rssi"] == -100.0
    denied = client.get("/v1/operations/devices", headers=world["reader"])
    assert (denied.status_code, denied.json()["error"]) == (403, "Forbidden")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"kind": "threshold", "metric": "fill_level", "operator": "above"},
            "needs operator and open_value",
        ),
        (
            {
                "kind": "threshold",
                "metric": "fill_level",
                "operator": "above",
                "open_value": 80,
                "clear_value": 90,
            },
            "at or below open_value",
        ),
        (
            {"kind": "silence", "intervals": 3, "webhook_url": "gopher://x"},
            "must look like https://host/path",
        ),
        (
            {"kind": "silence", "intervals": 3, "email_to": ["depot@example.org"]},
            "needs a mail server",
        ),
        (
            {
                "kind": "silence",
                "intervals": 3,
                "scope": "device",
                "scope_value": "0004A30B000000FF",
            },
            "no device",
        ),
        ({"kind": "silence"}, "needs intervals"),
    ],
)
def test_a_malformed_rule_is_a_422_that_says_why(
    client: TestClient, world: dict[str, dict[str, str]], body: dict[str, object], detail: str
) -> None:
    response = client.post(
        "/v1/admin/alert-rules", json={"name": "r", **body}, headers=world["admin"]
    )
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]


def test_rules_are_added_changed_listed_and_deleted(
    client: TestClient, world: dict[str, dict[str, str]]
) -> None:
    body = {
        "name": "bins",
        "kind": "threshold",
        "metric": "fill_level",
        "operator": "above",
        "open_value": 80,
        "clear_value": 60,
        "webhook_url": "https://example.org/hook",
    }
    created = client.post("/v1/admin/alert-rules", json=body, headers=world["admin"])
    assert created.status_code == 201 and len(created.json()["webhook_secret"]) >= 32
    assert (
        client.post("/v1/admin/alert-rules", json=body, headers=world["admin"]).status_code == 409
    )
    changed = client.patch(
        "/v1/admin/alert-rules/bins", json={"hold_s": 600}, headers=world["admin"]
    )
    assert (changed.json()["hold_s"], changed.json()["webhook_secret"]) == (600, None)
    listed = client.get("/v1/admin/alert-rules", headers=world["admin"]).json()["items"]
    assert [(r["name"], r["webhook_secret_set"]) for r in listed] == [("bins", True)]
    assert client.delete("/v1/admin/alert-rules/bins", headers=world["admin"]).status_code == 204
    assert client.get("/v1/admin/alert-rules/bins", headers=world["admin"]).status_code == 404


def test_a_malformed_smtp_setting_stops_at_start_up(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="from_address"):
        load_settings(alerts={"smtp": {"host": "mail.example.org", "from_address": "nobody"}})
    with pytest.raises(ConfigError, match="both username and password"):
        load_settings(
            alerts={
                "smtp": {"host": "mail.example.org", "from_address": "a@b.org", "username": "u"}
            }
        )
