"""Builders of the operations tests: TTN v3 uplinks of a waste-bin model that only a vendor
JavaScript codec decodes, the codec itself, a publisher, a registered fleet, and the inbox
of a local SMTP server."""

from __future__ import annotations

import base64
import json
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg

from datahub.config import parse_broker_url
from datahub.domain import City, Device
from datahub.storage import devices, suppliers
from datahub.storage.suppliers import SupplierRow

CODEC_JS = "function decodeUplink(input) { return { data: { fill: input.bytes[0] } }; }\n"
CODEC_YAML = """\
description: Acme waste-bin fill level sensor
reporting_interval_s: 600
metrics:
  - {path: [fill], metric: fill_level, kind: gauge}
"""


def write_bin_codec(codecs_dir: Path) -> None:
    """Drop the acme/bin codec (fill byte -> fill_level %) into a codec directory."""
    (codecs_dir / "acme").mkdir(exist_ok=True)
    (codecs_dir / "acme" / "bin.yaml").write_text(CODEC_YAML)
    (codecs_dir / "acme" / "bin.js").write_text(CODEC_JS)


def ttn_message(
    app: str,
    dev_eui: str,
    f_cnt: int,
    at: datetime,
    payload: bytes = b"\x00",
    gateways: tuple[tuple[str, float, float], ...] = (("gw-a", -100.0, 5.0),),
) -> tuple[str, bytes]:
    """A TTN v3 uplink without a session key id: its dedup key includes its time."""
    stamp = at.isoformat().replace("+00:00", "Z")
    body = {
        "end_device_ids": {
            "device_id": dev_eui.lower(),
            "application_ids": {"application_id": app},
            "dev_eui": dev_eui,
            "dev_addr": "260B0001",
        },
        "received_at": stamp,
        "uplink_message": {
            "f_port": 1,
            "f_cnt": f_cnt,
            "frm_payload": base64.b64encode(payload).decode(),
            "rx_metadata": [
                {"gateway_ids": {"gateway_id": g}, "rssi": rssi, "snr": snr, "time": stamp}
                for g, rssi, snr in gateways
            ],
            "settings": {
                "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}},
                "frequency": "868100000",
            },
            "received_at": stamp,
        },
    }
    return f"v3/{app}@ttn/devices/{dev_eui.lower()}/up", json.dumps(body).encode()


def publish(broker_url: str, messages: list[tuple[str, bytes]]) -> None:
    """Publish at QoS 1, each acknowledged by the broker before the next."""
    broker = parse_broker_url(broker_url)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"ops-pub-{uuid.uuid4().hex[:8]}"
    )
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for topic, body in messages:
            client.publish(topic, body, qos=1).wait_for_publish(timeout=10)
    finally:
        client.loop_stop()
        client.disconnect()


@dataclass
class Inbox:
    """What the local SMTP server received."""

    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    inbox: Inbox


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def register(
    conn: psycopg.Connection,
    *dev_euis: str,
    profile: str = "dragino/ldds75",
    city: City = City.DORTMUND,
    supplier: str = "edg",
) -> dict[str, int]:
    """Register devices of one supplier; return DevEUI -> device id."""
    ids = suppliers.upsert_suppliers(conn, suppliers=[SupplierRow(supplier, supplier.upper())])
    devices.upsert_devices(
        conn,
        devices=[Device(e, f"bin {e[-4:]}", city, supplier, profile) for e in dev_euis],
        supplier_ids=ids,
    )
    registry = devices.select_registry(conn)
    return {e: registry[e].device_id for e in dev_euis}
