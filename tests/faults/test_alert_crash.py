"""Crash safety of alert notifications: `kill -9` hits the ingest after an alarm opened and
while its webhook is being delivered. After a restart the notification is delivered again
with the same idempotency key and body, the later clearing once: no transition is lost and
none is sent twice under different keys."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from faultkit import (
    Broker,
    Ingest,
    log_tail,
)
from opskit import nothing_to_deliver, publish, ttn_message, write_bin_codec
from pytest_httpserver import HTTPServer
from realservices import temporary_database
from waiting import wait_until
from werkzeug import Request, Response

from datahub.config import AlertSettings
from datahub.domain import City, Device
from datahub.ops import rules
from datahub.ops.rule import Kind, Operator, Rule, Scope
from datahub.storage import devices, suppliers
from datahub.storage.suppliers import SupplierRow

pytestmark = pytest.mark.services

BIN = "A8404100000000C1"


class SlowFirst:
    """A webhook receiver that holds its first request until the sender has been killed."""

    def __init__(self, server: HTTPServer) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.first = threading.Event()
        self.release = threading.Event()
        server.expect_request("/hook", method="POST").respond_with_handler(self.handle)
        self.url = server.url_for("/hook")

    def handle(self, request: Request) -> Response:
        self.received.append((request.headers["Idempotency-Key"], request.get_data()))
        if not self.first.is_set():
            self.first.set()
            self.release.wait(30)
        return Response("ok")


def test_kill_9_during_delivery_loses_no_notification_and_keeps_its_key(
    broker: Broker, tmp_path: Path, httpserver: HTTPServer
) -> None:
    receiver = SlowFirst(httpserver)
    codecs = tmp_path / "codecs"
    codecs.mkdir()
    write_bin_codec(codecs)
    with temporary_database("timescaledb", "datahub_test_alert_crash") as database:
        ingest = Ingest(
            broker.url,
            database.url,
            tmp_path,
            sources={"ttn-dortmund": {"topic": "v3/crash-bins@ttn/devices/+/up"}},
            more={
                "catalog": {"codecs_dir": str(codecs), "codec_timeout_ms": 5000},
                "health": {"refresh_s": 0},
                "alerts": {"rule_cache_s": 0.2, "delivery_poll_s": 0.2, "scheduler_s": 0},
            },
        )
        with psycopg.connect(database.url) as conn:
            ids = suppliers.upsert_suppliers(conn, suppliers=[SupplierRow("edg", "EDG")])
            devices.upsert_devices(
                conn,
                devices=[Device(BIN, "bin", City.DORTMUND, "edg", "acme/bin")],
                supplier_ids=ids,
            )
            rule = Rule(
                name="bin-full", kind=Kind.THRESHOLD, scope=Scope.DEVICE, scope_value=BIN,
                metric="fill_level", operator=Operator.ABOVE, open_value=80, clear_value=60,
                hold_s=600, webhook_url=receiver.url,
            )  # fmt: skip
            rules.create_rule(conn, rule=rule, alerts_settings=AlertSettings(), actor="cli:test")
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

        def level(f_cnt: int, value: int) -> tuple[str, bytes]:
            at = start + timedelta(minutes=10 * f_cnt)
            return ttn_message("crash-bins", BIN, f_cnt, at, bytes([value]))

        try:
            ingest.start()
            publish(broker.url, [level(0, 70), level(1, 85), level(2, 85)])
            assert receiver.first.wait(30), "the open notification was never sent"
            ingest.kill()  # while the receiver holds the delivery
            receiver.release.set()
            time.sleep(0.5)
            ingest.start()
            wait_until("the open notification again", lambda: len(receiver.received) >= 2, 30)
            publish(broker.url, [level(3, 60)])
            wait_until(
                "the cleared notification",
                lambda: any(json.loads(b)["event"] == "cleared" for _, b in receiver.received),
                30,
            )
            wait_until("no notification pending", lambda: nothing_to_deliver(database.url), 30)
            assert ingest.terminate() == 0
        except BaseException:
            print(log_tail(ingest.log_path))
            raise
        finally:
            ingest.close()

    by_key: dict[str, set[bytes]] = {}
    for key, body in receiver.received:
        by_key.setdefault(key, set()).add(body)
    events = {key: json.loads(next(iter(bodies)))["event"] for key, bodies in by_key.items()}
    assert sorted(events.values()) == ["cleared", "open"]  # one key per transition
    assert all(len(bodies) == 1 for bodies in by_key.values())  # the same bytes each time
    sent = [json.loads(body)["event"] for _, body in receiver.received]
    assert sent[:2] == ["open", "open"] and sent[2:] == ["cleared"]
