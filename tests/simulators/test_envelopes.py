"""Envelopes: each built message looks like its network server's, and the hub parses it back."""

from __future__ import annotations

import base64
import json
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from chirpstack_api import integration
from google.protobuf import json_format
from paho.mqtt.client import topic_matches_sub

from datahub.config import DEFAULT_TOPICS
from datahub.domain import City, SourceFormat
from datahub.ingest.envelope import parse_envelope
from simulators.envelopes import EU868_CHANNELS, lora_airtime_s
from simulators.generator import SimUplink
from simulators.scenario import Scenario

FORMATS_DIR = Path(__file__).parents[1] / "fixtures" / "formats"
FIXTURE = {
    SourceFormat.TTN_V3: "ttn-v3-uplink-current.json",
    SourceFormat.CHIRPSTACK_V4_JSON: "chirpstack-v4-uplink-current.json",
    SourceFormat.CHIRPSTACK_V3_JSON: "chirpstack-v3-uplink-json_v3.json",
}
# What the fixtures have that a simulated uplink leaves out on purpose: no network-server
# payload codec is configured, so there is no decoded object; the fixtures' tag is a
# placeholder (simulated devices are tagged with supplier and fleet).
NOT_SIMULATED = {"uplink_message.decoded_payload", "object", "tags.key", "deviceInfo.tags.key"}
JSON_FORMATS = list(FIXTURE)


def _paths(node: Any, prefix: str = "") -> dict[str, type]:
    """Every key path of a JSON document (list items as "[]") with the type found there."""
    out: dict[str, type] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            out[path] = (
                float
                if isinstance(value, int | float) and not isinstance(value, bool)
                else type(value)
            )
            out.update(_paths(value, path))
    elif isinstance(node, list):
        for item in node:
            out.update(_paths(item, f"{prefix}[]"))
    return out


def _typical(uplinks: list[SimUplink], source: str) -> SimUplink:
    """An uplink with nothing that servers omit as zero: f_cnt > 0, not on channel 0."""
    return next(u for u in uplinks if u.source == source and u.f_cnt > 0 and u.radio.channel != 0)


@pytest.fixture(scope="module")
def sample(day_of_uplinks: list[SimUplink]) -> list[SimUplink]:
    """Uplinks of every fleet, including first frames (f_cnt 0)."""
    per_fleet: dict[str, list[SimUplink]] = defaultdict(list)
    for uplink in day_of_uplinks:
        if len(per_fleet[uplink.device.fleet]) < 40:
            per_fleet[uplink.device.fleet].append(uplink)
    return [u for uplinks in per_fleet.values() for u in uplinks]


@pytest.mark.parametrize("format", JSON_FORMATS, ids=str)
def test_json_message_has_the_fields_of_the_fixture(
    format: SourceFormat, day_of_uplinks: list[SimUplink]
) -> None:
    expected = _paths(json.loads((FORMATS_DIR / FIXTURE[format]).read_text()))
    uplink = _typical(day_of_uplinks, "ttn-dortmund")
    built = _paths(json.loads(uplink.message(format)[1]))
    missing = set(expected) - set(built) - NOT_SIMULATED
    missing -= {p for p in missing if any(p.startswith(f"{n}.") for n in NOT_SIMULATED)}
    assert not missing
    mistyped = {
        p: (expected[p], built[p]) for p in set(expected) & set(built) if expected[p] != built[p]
    }
    assert not mistyped


def test_ttn_message_layout(day_of_uplinks: list[SimUplink]) -> None:
    uplink = _typical(day_of_uplinks, "ttn-dortmund")
    topic, body = uplink.message(SourceFormat.TTN_V3)
    message = json.loads(body)
    device = uplink.device
    assert topic == f"v3/{device.application}@ttn/devices/{device.device_id}/up"
    assert topic_matches_sub(DEFAULT_TOPICS[SourceFormat.TTN_V3], topic)
    assert message["end_device_ids"]["dev_eui"] == device.dev_eui
    assert message["end_device_ids"]["dev_addr"] == uplink.session.dev_addr
    up = message["uplink_message"]
    assert base64.b64decode(up["frm_payload"]) == uplink.payload
    assert (up["f_port"], up["f_cnt"]) == (uplink.f_port, uplink.f_cnt)
    assert up["settings"]["frequency"] == str(uplink.radio.frequency)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", message["received_at"])
    assert re.fullmatch(r"\d+\.\d+s", up["consumed_airtime"])
    assert len(base64.b64decode(up["session_key_id"])) == 16
    assert all(re.fullmatch(r"[a-z:/.A-Z3]+:[0-9A-Z]{26}", c) for c in message["correlation_ids"])


def test_ttn_leaves_out_a_zero_frame_counter(day_of_uplinks: list[SimUplink]) -> None:
    uplink = next(u for u in day_of_uplinks if u.f_cnt == 0)
    assert "f_cnt" not in json.loads(uplink.message(SourceFormat.TTN_V3)[1])["uplink_message"]


@pytest.mark.parametrize(
    "format", [SourceFormat.CHIRPSTACK_V4_JSON, SourceFormat.CHIRPSTACK_V4_PROTOBUF], ids=str
)
def test_chirpstack_v4_topic(format: SourceFormat, day_of_uplinks: list[SimUplink]) -> None:
    uplink = _typical(day_of_uplinks, "chirpstack-schwerte")
    topic, _ = uplink.message(format)
    assert re.fullmatch(
        rf"application/[0-9a-f-]{{36}}/device/{uplink.device.dev_eui.lower()}/event/up", topic
    )
    assert topic_matches_sub(DEFAULT_TOPICS[format], topic)


def test_chirpstack_v4_json_parses_strictly_into_the_protobuf(sample: list[SimUplink]) -> None:
    for uplink in sample:
        body = uplink.message(SourceFormat.CHIRPSTACK_V4_JSON)[1]
        event = json_format.Parse(body, integration.UplinkEvent())  # unknown fields raise
        assert event.deduplication_id == str(uplink.radio.message_id)
        assert re.fullmatch(r".*\.\d{9}\+00:00", json.loads(body)["time"])


def test_chirpstack_v4_protobuf_is_the_json_event(sample: list[SimUplink]) -> None:
    for uplink in sample:
        event = integration.UplinkEvent()
        event.ParseFromString(uplink.message(SourceFormat.CHIRPSTACK_V4_PROTOBUF)[1])
        from_json = json_format.Parse(
            uplink.message(SourceFormat.CHIRPSTACK_V4_JSON)[1], integration.UplinkEvent()
        )
        assert event == from_json
        assert event.device_info.dev_eui == uplink.device.dev_eui.lower()
        assert (event.f_cnt, event.f_port, event.data) == (
            uplink.f_cnt,
            uplink.f_port,
            uplink.payload,
        )
        assert event.tx_info.modulation.lora.spreading_factor == uplink.radio.spreading_factor


def test_chirpstack_v3_message_layout(day_of_uplinks: list[SimUplink]) -> None:
    uplink = _typical(day_of_uplinks, "chirpstack-schwerte")
    topic, body = uplink.message(SourceFormat.CHIRPSTACK_V3_JSON)
    message = json.loads(body)
    assert re.fullmatch(rf"application/\d+/device/{uplink.device.dev_eui.lower()}/event/up", topic)
    assert message["devEUI"] == uplink.device.dev_eui.lower()
    assert message["txInfo"] == {"frequency": uplink.radio.frequency, "dr": uplink.radio.data_rate}
    assert len({rx["uplinkID"] for rx in message["rxInfo"]}) == len(message["rxInfo"])


def test_radio_metadata_is_plausible(demo: Scenario, day_of_uplinks: list[SimUplink]) -> None:
    gateways_seen: dict[str, set[str]] = defaultdict(set)
    for uplink in day_of_uplinks:
        radio = uplink.radio
        assert 1 <= len(radio.receptions) <= 3
        assert 7 <= radio.spreading_factor <= 12
        assert radio.frequency in EU868_CHANNELS and radio.bandwidth == 125_000
        for reception in radio.receptions:
            assert -120 <= reception.rssi <= -40
            assert -15 <= reception.snr <= 12
            gateways_seen[uplink.source].add(reception.gateway.id)
    for source in demo.sources:
        assert gateways_seen[source.name] <= {g.id for g in source.gateways}
    spreading = {u.radio.spreading_factor for u in day_of_uplinks}
    assert len(spreading) >= 3  # near and far devices do not all use one data rate


def test_airtime_matches_the_things_stack() -> None:
    # TTS reports 0.056576 s for a 20-byte PHY payload at SF7/125 kHz (ttn-v3-uplink.json).
    assert lora_airtime_s(20, 7) == pytest.approx(0.056576)
    airtimes = [lora_airtime_s(20, sf) for sf in range(7, 13)]
    assert airtimes == sorted(airtimes) and airtimes[-1] > 1.0


@pytest.mark.parametrize("format", list(SourceFormat), ids=str)
def test_hub_parses_back_what_was_built(format: SourceFormat, sample: list[SimUplink]) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert any(u.f_cnt == 0 for u in sample) and any(u.f_cnt > 0 for u in sample)
    for uplink in sample:
        topic, body = uplink.message(format)
        parsed = parse_envelope(
            body, format=format, source=uplink.source, city=uplink.device.city, topic=topic, now=now
        )
        assert parsed.dev_eui == uplink.device.dev_eui
        assert parsed.f_cnt == uplink.f_cnt
        assert parsed.f_port == uplink.f_port
        assert parsed.payload == uplink.payload
        assert parsed.received_at == uplink.time
        assert parsed.radio == uplink.radio.to_domain(format)
        assert parsed.city is uplink.device.city
        if format is not SourceFormat.CHIRPSTACK_V3_JSON:  # json_v3 carries no devAddr
            assert parsed.dev_addr == uplink.session.dev_addr


@pytest.mark.parametrize("format", list(SourceFormat), ids=str)
def test_every_uplink_gets_its_own_dedup_key(format: SourceFormat, sample: list[SimUplink]) -> None:
    keys = {
        parse_envelope(
            u.message(format)[1],
            format=format,
            source=u.source,
            city=City(u.device.city),
            topic="",
            now=datetime.now(UTC),
        ).dedup_key
        for u in sample
    }
    assert len(keys) == len(sample)
