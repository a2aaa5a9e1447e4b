"""The operator's side through a running `datahub ingest` on the real broker and database:
exact frame loss, a codec dropped into the directory of a running API and ingest, fill-level
alarms delivered to a local webhook receiver and SMTP server, and a silence alarm."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from opskit import Inbox, free_port, nothing_to_deliver, publish, ttn_message, write_bin_codec
from prometheus_text import parse_samples
from pytest_httpserver import HTTPServer
from realservices import BROKER_URL, Database, temporary_database
from waiting import wait_until
from werkzeug import Request, Response

from datahub.api.app import create_app
from datahub.config import Settings
from datahub.domain import City, Device
from datahub.fairshare import admin
from datahub.ops.refresh import HealthRefresher
from datahub.storage import devices, suppliers
from datahub.storage.suppliers import SupplierRow

pytestmark = pytest.mark.services

RUN = uuid.uuid4().hex[:8]
APP = f"ops-{RUN}"
TOPIC = f"v3/{APP}@ttn/devices/+/up"
NOW = datetime.now(UTC).replace(microsecond=0)
LOSSY, WRAPPING, BIN, NEW_BIN = (f"A8404100000000{n:02X}" for n in (0xD1, 0xD2, 0xB1, 0xB0))


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    with temporary_database("timescaledb", "datahub_test_ops") as database:
        yield database


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


@pytest.fixture(scope="module")
def codecs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("codecs")
    (path / "acme").mkdir()  # the vendor folder exists; the model's codec comes later
    return path


@pytest.fixture(scope="module")
def settings(database: Database, codecs_dir: Path, smtp: tuple[int, Inbox]) -> dict[str, Any]:
    return {
        "database_url": database.url,
        "broker_url": BROKER_URL,
        "ingest": {"batch_size": 200, "batch_wait_ms": 20, "metrics_port": free_port()},
        "catalog": {"codecs_dir": str(codecs_dir), "codec_timeout_ms": 5000},
        # The test computes health itself, at the moments it chooses.
        "health": {"refresh_s": 0},
        "alerts": {
            "rule_cache_s": 0.2,
            "scheduler_s": 0.5,
            "delivery_poll_s": 0.2,
            "smtp": {
                "host": "127.0.0.1",
                "port": smtp[0],
                "security": "none",
                "from_address": "hub@example.org",
            },
        },
        "sources": [
            {
                "name": "ttn-ops",
                "city": "dortmund",
                "format": "ttn-v3",
                "topic": TOPIC,
                "qos": 1,
                "client_id": f"ops-ingest-{RUN}",
            }
        ],
    }


@pytest.fixture(scope="module")
def ingest(
    settings: dict[str, Any], database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    workdir = tmp_path_factory.mktemp("ingest")
    config = workdir / "datahub.yaml"
    config.write_text(yaml.safe_dump({k: v for k, v in settings.items() if k != "database_url"}))
    with psycopg.connect(database.url) as conn:
        ids = suppliers.upsert_suppliers(conn, suppliers=[SupplierRow("edg", "EDG")])
        devices.upsert_devices(
            conn,
            devices=[
                Device(e, f"bin {e[-2:]}", City.DORTMUND, "edg", "acme/bin")
                for e in (LOSSY, WRAPPING, BIN, NEW_BIN)
            ],
            supplier_ids=ids,
        )
    env = {**os.environ, "DATAHUB_DATABASE_URL": database.url}
    env.pop("DATAHUB_CONFIG", None)
    log = (workdir / "ingest.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "datahub.cli", "--config", str(config), "ingest"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    ready = f"http://127.0.0.1:{settings['ingest']['metrics_port']}/health/ready"
    wait_until("the ingest to subscribe", lambda: _status(ready) == 200, timeout=60)
    yield proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    print((workdir / "ingest.log").read_text()[-3000:])


@pytest.fixture(scope="module")
def api(settings: dict[str, Any], database: Database) -> Iterator[TestClient]:
    with psycopg.connect(database.url) as conn:
        admin.add_consumer(
            conn,
            actor="cli:test",
            slug="ops",
            name="ops",
            purpose="public_interest",
            requests_per_s=10_000,
        )
        _, secret = admin.create_key(
            conn, actor="cli:test", consumer="ops", scopes=["read", "admin"]
        )
    with TestClient(
        create_app(Settings(**settings)), headers={"Authorization": f"Bearer {secret}"}
    ) as client:
        yield client


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except (urllib.error.URLError, OSError):
        return 0


def stored(database: Database, dev_eui: str) -> int:
    with psycopg.connect(database.url) as conn:
        row = conn.execute("SELECT count(*) FROM uplink WHERE dev_eui = %s", (dev_eui,)).fetchone()
    return int(row[0]) if row else 0


def test_a_codec_dropped_in_reaches_the_running_ingest_and_api(
    ingest: subprocess.Popen[bytes], api: TestClient, codecs_dir: Path, database: Database
) -> None:
    publish(BROKER_URL, [ttn_message(APP, NEW_BIN, 1, NOW - timedelta(minutes=20), b"\x21")])
    wait_until("the first uplink", lambda: stored(database, NEW_BIN) == 1)
    assert api.get(f"/v1/devices/{NEW_BIN}").json()["metrics"] == []

    write_bin_codec(codecs_dir)
    time.sleep(2.5)  # the directory is looked at every 2 s at most
    publish(BROKER_URL, [ttn_message(APP, NEW_BIN, 2, NOW - timedelta(minutes=10), b"\x2a")])

    wait_until(
        "the device's metrics in the API",
        lambda: api.get(f"/v1/devices/{NEW_BIN}").json()["metrics"] == ["fill_level"],
    )

    def latest() -> list[dict[str, Any]]:
        items = api.get("/v1/latest", params={"metric": "fill_level"}).json()["items"]
        return [i for i in items if i["dev_eui"] == NEW_BIN]

    wait_until("the new reading in /v1/latest", lambda: len(latest()) == 1)
    assert (latest()[0]["value"], latest()[0]["unit"]) == (42.0, "%")


def test_frame_loss_is_exact_across_gaps_resets_roll_overs_and_duplicates(
    ingest: subprocess.Popen[bytes], api: TestClient, database: Database
) -> None:
    def ago(minutes: float) -> datetime:
        return NOW - timedelta(minutes=minutes)

    two_gateways = (("gw-a", -100.0, 2.0), ("gw-b", -90.0, 6.0))
    lossy = [
        (100, ago(4320)), (105, ago(4310)),  # 3 days ago: 4 lost
        (10, ago(600)), (11, ago(590)), (13, ago(580)), (14, ago(570)),  # a reset, 1 lost
        (0, ago(560)), (1, ago(550)), (4, ago(540)),  # a reset, 2 lost
    ]  # fmt: skip
    messages = [ttn_message(APP, LOSSY, f, at) for f, at in lossy]
    # Frame 13 once more through another gateway, a second later: one frame, two uplinks.
    messages.append(
        ttn_message(APP, LOSSY, 13, ago(580) + timedelta(seconds=1), gateways=two_gateways)
    )
    wrapping = [(65_533, ago(200)), (65_535, ago(190)), (1, ago(180)), (2, ago(170))]
    messages += [ttn_message(APP, WRAPPING, f, at) for f, at in wrapping]
    publish(BROKER_URL, messages)
    wait_until(
        "every uplink", lambda: stored(database, LOSSY) == 10 and stored(database, WRAPPING) == 4
    )

    with psycopg.connect(database.url, autocommit=True) as conn:
        assert HealthRefresher(Settings(database_url=database.url).health).refresh_due(conn) >= 2

    lossy_health = api.get(f"/v1/operations/devices/{LOSSY}").json()
    assert lossy_health["loss_24h"] == {"received": 7, "lost": 3, "ratio": 0.3}
    assert lossy_health["loss_7d"] == {"received": 9, "lost": 7, "ratio": 7 / 16}
    assert lossy_health["resets_7d"] == 2
    assert lossy_health["radio"]["rssi_worst"] == -100.0
    assert {g["gateway_id"]: g["uplinks_7d"] for g in lossy_health["gateways"]} == {
        "gw-a": 10,
        "gw-b": 1,
    }
    wrapping_health = api.get(f"/v1/operations/devices/{WRAPPING}").json()
    assert wrapping_health["loss_24h"] == {"received": 4, "lost": 2, "ratio": 2 / 6}
    assert wrapping_health["resets_7d"] == 0
    assert wrapping_health["airtime"]["seconds_24h"] == pytest.approx(4 * 0.046336)
    listed = api.get("/v1/operations/devices", params={"supplier": "edg"}).json()
    assert {d["dev_eui"] for d in listed["items"]} == {LOSSY, WRAPPING, BIN, NEW_BIN}
    gateways = {g["gateway_id"]: g for g in api.get("/v1/operations/gateways").json()["items"]}
    assert gateways["gw-b"]["devices_7d"] == 1


class Receiver:
    def __init__(self, server: HTTPServer) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.keys: list[str] = []
        server.expect_request("/alarms", method="POST").respond_with_handler(self.handle)
        self.url = server.url_for("/alarms")

    def handle(self, request: Request) -> Response:
        self.bodies.append(json.loads(request.get_data()))
        self.keys.append(request.headers["Idempotency-Key"])
        return Response("ok")


def test_fill_levels_give_one_open_and_one_cleared_notification(
    ingest: subprocess.Popen[bytes],
    api: TestClient,
    httpserver: HTTPServer,
    smtp: tuple[int, Inbox],
    database: Database,
) -> None:
    receiver = Receiver(httpserver)
    created = api.post(
        "/v1/admin/alert-rules",
        json={
            "name": "bin-full",
            "kind": "threshold",
            "scope": "device",
            "scope_value": BIN,
            "metric": "fill_level",
            "operator": "above",
            "open_value": 80,
            "clear_value": 60,
            "hold_s": 600,
            "webhook_url": receiver.url,
            "email_to": ["depot@example.org"],
            "cooldown_s": 7200,
        },
    )
    assert created.status_code == 201, created.text
    time.sleep(0.5)  # the ingest's rule cache lasts 0.2 s here

    def at(minutes: int) -> datetime:
        return NOW - timedelta(hours=2) + timedelta(minutes=minutes)

    levels = [(0, 70), (10, 85), (20, 85), (30, 60)]
    publish(
        BROKER_URL, [ttn_message(APP, BIN, i, at(m), bytes([v])) for i, (m, v) in enumerate(levels)]
    )
    wait_until("two webhooks", lambda: len(receiver.bodies) >= 2)
    wait_until("two e-mails", lambda: len(smtp[1].messages) >= 2)
    # Full again within the cooldown: recorded, not notified.
    again = [(40, 90), (50, 95), (60, 30)]
    publish(
        BROKER_URL,
        [ttn_message(APP, BIN, 4 + i, at(m), bytes([v])) for i, (m, v) in enumerate(again)],
    )
    wait_until(
        "the second alarm",
        lambda: (
            len(
                api.get(
                    "/v1/operations/alarms", params={"state": "all", "rule": "bin-full"}
                ).json()["items"]
            )
            == 2
        ),
    )
    wait_until("no notification pending", lambda: nothing_to_deliver(database.url))

    assert [b["event"] for b in receiver.bodies] == ["open", "cleared"]
    assert len(set(receiver.keys)) == 2
    assert [b["alarm"]["value"] for b in receiver.bodies] == [85.0, 60.0]
    assert len(smtp[1].messages) == 2
    alarms = api.get("/v1/operations/alarms", params={"state": "all", "rule": "bin-full"}).json()
    assert [(a["state"], a["notified"]) for a in alarms["items"]] == [
        ("cleared", False),
        ("cleared", True),
    ]


def test_a_device_that_stops_sending_raises_one_silence_alarm(
    ingest: subprocess.Popen[bytes], api: TestClient, httpserver: HTTPServer
) -> None:
    receiver = Receiver(httpserver)
    created = api.post(
        "/v1/admin/alert-rules",
        json={
            "name": "wrapping-silent",
            "kind": "silence",
            "scope": "device",
            "scope_value": WRAPPING,
            "intervals": 3,
            "webhook_url": receiver.url,
        },
    )
    assert created.status_code == 201, created.text
    wait_until("the silence notification", lambda: len(receiver.bodies) == 1)
    time.sleep(2)  # four more scheduler rounds
    assert [(b["event"], b["alarm"]["subject"]) for b in receiver.bodies] == [("open", WRAPPING)]
    active = api.get("/v1/operations/alarms", params={"rule": "wrapping-silent"}).json()["items"]
    assert [(a["subject"], a["state"]) for a in active] == [(WRAPPING, "open")]


def test_prometheus_has_devices_by_status_gateways_and_active_alarms(api: TestClient) -> None:
    samples = parse_samples(api.get("/metrics").text)
    dortmund = sum(v for k, v in samples.items() if k.startswith('datahub_devices{city="dortmund"'))
    assert dortmund == 4
    assert samples['datahub_devices{city="schwerte",status="ok"}'] == 0
    assert samples['datahub_alarms_active{rule="wrapping-silent",state="open"}'] == 1
    assert samples['datahub_alarms_active{rule="bin-full",state="open"}'] == 0
    assert sum(v for k, v in samples.items() if k.startswith("datahub_gateways")) == 2
