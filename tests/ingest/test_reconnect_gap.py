"""When the reconnect back-fill starts and how often it runs (no broker, no database)."""

from __future__ import annotations

import queue
import threading
from datetime import UTC, datetime, timedelta

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from datahub.config import Settings, SourceSettings, StorageApiSettings
from datahub.domain import City, SourceFormat
from datahub.ingest import supervisor
from datahub.ingest.mqtt import UNNOTICED, Subscriber
from datahub.ingest.supervisor import BACKFILL_MARGIN, Ingest

API = StorageApiSettings(url="http://127.0.0.1:9", application_id="app", api_key="k")
TTN = SourceSettings(
    name="ttn", city=City.DORTMUND, format=SourceFormat.TTN_V3, qos=0, storage_api=API
)
CS = SourceSettings(name="cs", city=City.SCHWERTE, format=SourceFormat.CHIRPSTACK_V4_JSON)
OK = ReasonCode(PacketTypes.CONNACK, "Success")
GRANTED = [ReasonCode(PacketTypes.SUBACK, "Granted QoS 0")]


class FakeClient:
    def subscribe(self, topic: str, qos: int) -> None:
        pass


class _Msg:
    topic, payload, qos, mid = "t", b"{}", 0, 0


def test_only_a_resubscription_reports_a_gap_starting_at_the_last_message() -> None:
    gaps: list[tuple[str, datetime]] = []
    sub = Subscriber(
        Settings(sources=(TTN,)),
        inbox=queue.SimpleQueue(),
        on_resubscribed=lambda name, start: gaps.append((name, start)),
    )
    client = FakeClient()
    sub._on_connect(client, TTN, None, OK, None)  # type: ignore[arg-type]
    sub._on_subscribe(client, TTN, 1, GRANTED, None)  # type: ignore[arg-type]
    assert gaps == []  # the first connect is no reconnect

    sub._on_message(client, TTN, _Msg())  # type: ignore[arg-type]
    last = sub._inbox.get_nowait().arrived_at
    sub._on_disconnect(client, TTN, None, OK, None)  # type: ignore[arg-type]
    sub._on_connect(client, TTN, None, OK, None)  # type: ignore[arg-type]
    sub._on_subscribe(client, TTN, 2, GRANTED, None)  # type: ignore[arg-type]
    assert gaps == [("ttn", last)]

    # Silent since long before the disconnect: the gap starts where a dead connection could
    # have gone unnoticed.
    sub._last_arrival["ttn"] = last - timedelta(hours=3)
    before = datetime.now(UTC)
    sub._on_disconnect(client, TTN, None, OK, None)  # type: ignore[arg-type]
    sub._on_connect(client, TTN, None, OK, None)  # type: ignore[arg-type]
    sub._on_subscribe(client, TTN, 3, GRANTED, None)  # type: ignore[arg-type]
    assert gaps[1][1] >= before - UNNOTICED
    assert gaps[1][1] <= datetime.now(UTC) - UNNOTICED


def test_one_backfill_per_source_at_a_time_taking_the_gaps_that_come_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingest = Ingest(Settings(sources=(TTN, CS)))
    calls: list[tuple[str, datetime]] = []
    release = threading.Event()
    running = threading.Semaphore(0)

    def backfill_since(self: Ingest, source: str, since: datetime) -> None:
        calls.append((source, since))
        running.release()
        release.wait(10)

    monkeypatch.setattr(supervisor.Ingest, "_backfill_since", backfill_since)
    t0 = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)

    ingest._backfill_gap("cs", t0)  # QoS 1: the broker's session redelivers
    ingest._backfill_gap("ttn", t0)
    assert running.acquire(timeout=5)
    ingest._backfill_gap("ttn", t0 + timedelta(minutes=5))  # while the first runs
    ingest._backfill_gap("ttn", t0 + timedelta(minutes=2))
    assert len(calls) == 1
    release.set()
    assert running.acquire(timeout=5)

    assert calls == [
        ("ttn", t0 - BACKFILL_MARGIN),
        ("ttn", t0 + timedelta(minutes=2) - BACKFILL_MARGIN),  # the earliest pending gap
    ]
