"""Builders of the operations tests: TTN v3 uplinks of a waste-bin model that only a vendor
JavaScript codec decodes, the codec itself, and a publisher."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt

from datahub.config import parse_broker_url

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
