"""Acknowledgement only on the connection a message arrived on (no broker needed)."""

from __future__ import annotations

import queue
from datetime import UTC, datetime
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from datahub.config import Settings, SourceSettings
from datahub.domain import City, SourceFormat
from datahub.ingest.mqtt import Message, Subscriber

SOURCE = SourceSettings(name="cs", city=City.SCHWERTE, format=SourceFormat.CHIRPSTACK_V4_JSON)
OK = ReasonCode(PacketTypes.CONNACK, "Success")


class FakeClient:
    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acked.append(mid)

    def subscribe(self, topic: str, qos: int) -> None:
        pass


def subscriber() -> Subscriber:
    return Subscriber(Settings(sources=(SOURCE,)), inbox=queue.SimpleQueue())


def delivered(sub: Subscriber, client: FakeClient, mid: int) -> Message:
    sub._on_message(client, SOURCE, _Msg(mid))  # type: ignore[arg-type]
    message: Message = sub._inbox.get_nowait()
    return message


class _Msg:
    def __init__(self, mid: int) -> None:
        self.topic, self.payload, self.qos, self.mid = "t", b"{}", 1, mid


def connect(sub: Subscriber, client: Any) -> None:
    sub._on_connect(client, SOURCE, None, OK, None)
    sub._on_subscribe(client, SOURCE, 1, [ReasonCode(PacketTypes.SUBACK, "Granted QoS 1")], None)


def test_messages_of_the_current_connection_are_acknowledged() -> None:
    sub, client = subscriber(), FakeClient()
    connect(sub, client)
    batch = [delivered(sub, client, 1), delivered(sub, client, 2)]

    assert sub.ack(batch) == {"cs": 2}
    assert client.acked == [1, 2]
    assert sub.online() == {"cs": True}


def test_messages_of_a_lost_connection_are_left_to_the_redelivery() -> None:
    sub, client = subscriber(), FakeClient()
    connect(sub, client)
    old = delivered(sub, client, 7)
    sub._on_disconnect(client, SOURCE, None, OK, None)
    assert sub.online() == {"cs": False}
    connect(sub, client)
    again = delivered(sub, client, 7)  # the broker resends it, often under the same id

    assert sub.ack([old]) == {}
    assert client.acked == []  # a second PUBACK for id 7 could release a newer message
    assert sub.ack([again]) == {"cs": 1}
    assert client.acked == [7]
    assert old.arrived_at <= datetime.now(UTC)
