"""Envelope parsers: the documented messages of each network server, their quirks and their faults.

The messages in tests/fixtures/formats/ are copies of shared/formats/ (see the README there for
which are verbatim vendor examples and which quirks they carry).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from chirpstack_api.integration import integration_pb2
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datahub.domain import City, GatewayReception, Radio, SourceFormat, Uplink
from datahub.errors import EnvelopeError
from datahub.ingest import envelope
from datahub.ingest.envelope import parse_envelope, parse_rfc3339

FORMATS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "formats"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TTN = SourceFormat.TTN_V3
CS4_JSON = SourceFormat.CHIRPSTACK_V4_JSON
CS4_PB = SourceFormat.CHIRPSTACK_V4_PROTOBUF
CS3 = SourceFormat.CHIRPSTACK_V3_JSON
JSON_FORMATS = (TTN, CS4_JSON, CS3)
FIXTURE_FORMATS = {
    "ttn-v3-uplink.json": TTN,
    "ttn-v3-uplink-mqtt-doc.json": TTN,
    "ttn-v3-uplink-current.json": TTN,
    "chirpstack-v4-uplink.json": CS4_JSON,
    "chirpstack-v4-uplink-current.json": CS4_JSON,
    "chirpstack-v3-uplink.json": CS3,
    "chirpstack-v3-uplink-json_v3.json": CS3,
}
DELETE = object()


def fixture_bytes(name: str) -> bytes:
    return (FORMATS_DIR / name).read_bytes()


def fixture_doc(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(fixture_bytes(name))
    return doc


def encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def parse(body: bytes, fmt: SourceFormat, *, now: datetime = NOW, topic: str = "t") -> Uplink:
    return parse_envelope(
        body, format=fmt, source="test-source", city=City.SCHWERTE, topic=topic, now=now
    )


def edited(name: str, **changes: Any) -> dict[str, Any]:
    """Load a fixture and apply changes keyed by dotted path ("a.b.0.c"); DELETE removes."""
    doc = fixture_doc(name)
    for dotted, value in changes.items():
        set_path(doc, dotted.split("."), value)
    return doc


def set_path(doc: Any, path: list[str], value: Any) -> None:
    *parents, last = path
    for step in parents:
        doc = doc[int(step)] if isinstance(doc, list) else doc[step]
    name: Any = int(last) if isinstance(doc, list) else last
    if value is DELETE:
        del doc[name]
    else:
        doc[name] = value


def protobuf_body(doc: dict[str, Any]) -> bytes:
    """Encode a ChirpStack v4 JSON event as the binary protobuf ChirpStack would publish."""
    event = json_format.Parse(json.dumps(doc), integration_pb2.UplinkEvent())
    body: bytes = event.SerializeToString()
    return body


def assert_rejected(body: bytes, fmt: SourceFormat, expected_detail: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse(body, fmt)
    assert expected_detail in caught.value.detail
    assert_explained(caught.value)


def assert_explained(error: EnvelopeError) -> None:
    """Every known fault must be reported by the parsers, never by the safety net."""
    assert not error.detail.startswith("malformed message"), error.detail


# ---------------------------------------------------------------------------------------------
# Every documented message, every field


def gateway(gateway_id: str, rssi: float | None, snr: float | None) -> tuple[GatewayReception]:
    return (GatewayReception(gateway_id, rssi, snr),)


TTN_DECODED = {"temperature": 1.0, "luminosity": 0.64}
CS4_RADIO = Radio(gateway("0016c001f153a14c", -36.0, 10.5), 11, 125_000, 867_100_000)
CS3_RADIO = Radio(gateway("0303030303030303", -48.0, 9.0), 11, 125_000, 868_100_000)
CS3_DECODED = {"temperatureSensor": 25, "humiditySensor": 32}

EXPECTED: dict[str, dict[str, Any]] = {
    # Verbatim docs example: no f_port, pre-3.22 settings layout, integer snr.
    "ttn-v3-uplink.json": dict(
        dev_eui="0004A30B001C0530",
        received_at=datetime(2020, 2, 12, 15, 15, 46, 14773, tzinfo=UTC),
        f_port=None,
        f_cnt=1,
        payload=bytes.fromhex("8241de"),
        radio=Radio(gateway("gtw1", -35.0, 5.0), 7, 125_000, 868_300_000),
        dev_addr="00BCB929",
        ns_decoded=TTN_DECODED,
    ),
    # Verbatim MQTT docs example: no f_cnt and no received_at, so the gateway's time is used.
    "ttn-v3-uplink-mqtt-doc.json": dict(
        dev_eui="4200000000000000",
        received_at=datetime(2019, 1, 29, 13, 2, 34, 981000, tzinfo=UTC),
        f_port=15,
        f_cnt=0,
        payload=b"Temperature = 0.0",
        radio=Radio(gateway("eui-0242020000247803", -35.0, 5.0), 7, 125_000, 868_500_000),
        dev_addr="01DA1F15",
        ns_decoded=None,
    ),
    "ttn-v3-uplink-current.json": dict(
        dev_eui="0004A30B001C0530",
        received_at=datetime(2020, 2, 12, 15, 15, 46, 14773, tzinfo=UTC),
        f_port=1,
        f_cnt=1,
        payload=bytes.fromhex("8241de"),
        radio=Radio(gateway("gtw1", -35.0, 5.2), 7, 125_000, 868_300_000),
        dev_addr="00BCB929",
        ns_decoded=TTN_DECODED,
    ),
    # Verbatim v4.0-era example: fCnt left out (0), no object.
    "chirpstack-v4-uplink.json": dict(
        dev_eui="0101010101010101",
        received_at=datetime(2022, 7, 18, 9, 34, 15, 775023, tzinfo=UTC),
        f_port=1,
        f_cnt=0,
        payload=b"\xaa",
        radio=CS4_RADIO,
        dev_addr="00189440",
        ns_decoded=None,
    ),
    "chirpstack-v4-uplink-current.json": dict(
        dev_eui="0101010101010101",
        received_at=datetime(2022, 7, 18, 9, 34, 15, 775023, tzinfo=UTC),
        f_port=1,
        f_cnt=10,
        payload=b"\xaa",
        radio=CS4_RADIO,
        dev_addr="00189440",
        ns_decoded={"temperature": 22.5},
    ),
    # The verbatim "json" marshaler example, with its "..." placeholder replaced: see
    # test_chirpstack_v3_placeholder_data_is_rejected. base64 IDs, kHz bandwidth, objectJSON.
    "chirpstack-v3-uplink.json": dict(
        dev_eui="0202020202020202",
        received_at=datetime(2019, 11, 8, 13, 59, 25, 48445, tzinfo=UTC),
        f_port=5,
        f_cnt=10,
        payload=bytes([25, 32]),
        radio=CS3_RADIO,
        dev_addr=None,
        ns_decoded=CS3_DECODED,
    ),
    # json_v3 has txInfo.dr 1 only, read as EU868: SF11 at 125 kHz.
    "chirpstack-v3-uplink-json_v3.json": dict(
        dev_eui="0202020202020202",
        received_at=datetime(2019, 11, 8, 13, 59, 25, 48445, tzinfo=UTC),
        f_port=5,
        f_cnt=10,
        payload=bytes([25, 32]),
        radio=CS3_RADIO,
        dev_addr=None,
        ns_decoded=CS3_DECODED,
    ),
}


def documented_body(name: str) -> bytes:
    if name == "chirpstack-v3-uplink.json":
        return fixture_bytes(name).replace(b'"data": "..."', b'"data": "GSA="')
    return fixture_bytes(name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_documented_message(name: str) -> None:
    uplink = parse(documented_body(name), FIXTURE_FORMATS[name])

    for field_name, value in EXPECTED[name].items():
        assert getattr(uplink, field_name) == value, field_name
    assert uplink.city is City.SCHWERTE
    assert uplink.source == "test-source"
    assert uplink.received_at.tzinfo is UTC
    assert isinstance(uplink.dedup_key, bytes)
    assert len(uplink.dedup_key) == 16


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in FORMATS_DIR.glob("*.json"))


def test_chirpstack_v3_placeholder_data_is_rejected() -> None:
    # The verbatim v3 example carries "data": "..." where the docs elided the payload. A
    # lenient decoder would turn it into empty bytes and store a wrong, empty uplink; the hub
    # decodes base64 strictly, so the file as published is a bad envelope, with its reason.
    # test_documented_message proves that every other field of it parses.
    assert_rejected(fixture_bytes("chirpstack-v3-uplink.json"), CS3, "data: invalid base64")


@pytest.mark.parametrize("name", ["chirpstack-v4-uplink.json", "chirpstack-v4-uplink-current.json"])
def test_chirpstack_v4_protobuf_parses_like_json(name: str) -> None:
    from_json = parse(fixture_bytes(name), CS4_JSON)
    from_protobuf = parse(protobuf_body(fixture_doc(name)), CS4_PB)

    for field in fields(Uplink):
        assert getattr(from_protobuf, field.name) == getattr(from_json, field.name), field.name


def test_protobuf_float32_snr_is_shortest_decimal() -> None:
    doc = edited("chirpstack-v4-uplink-current.json", **{"rxInfo.0.snr": 5.2})
    uplink = parse(protobuf_body(doc), CS4_PB)
    assert uplink.radio.gateways[0].snr == 5.2


def test_received_at_ignores_now_when_the_message_has_a_time() -> None:
    for name in EXPECTED:
        body, fmt = documented_body(name), FIXTURE_FORMATS[name]
        assert parse(body, fmt, now=NOW) == parse(body, fmt, now=NOW + timedelta(days=1)), name


def test_body_is_authoritative_over_topic() -> None:
    topic = "application/1/device/ffffffffffffffff/event/up"
    uplink = parse(fixture_bytes("chirpstack-v4-uplink.json"), CS4_JSON, topic=topic)
    assert uplink.dev_eui == "0101010101010101"


# ---------------------------------------------------------------------------------------------
# Quirks and fallbacks


def test_ttn_received_at_fallbacks() -> None:
    name = "ttn-v3-uplink-current.json"
    second_gateway = {
        "gateway_ids": {"eui": "AA555A0000000001"},
        "time": "2020-02-12T15:15:45.5Z",
        "rssi": -100,
    }
    cases = [
        ({}, datetime(2020, 2, 12, 15, 15, 46, 14773, tzinfo=UTC)),
        ({"received_at": DELETE}, datetime(2020, 2, 12, 15, 15, 45, 789585, tzinfo=UTC)),
        (
            {"received_at": DELETE, "uplink_message.received_at": DELETE},
            datetime(2020, 2, 12, 15, 15, 45, 788123, tzinfo=UTC),
        ),
        (
            {
                "received_at": DELETE,
                "uplink_message.received_at": DELETE,
                "uplink_message.rx_metadata.1": second_gateway,
            },
            datetime(2020, 2, 12, 15, 15, 45, 500000, tzinfo=UTC),
        ),
        (
            {
                "received_at": DELETE,
                "uplink_message.received_at": DELETE,
                "uplink_message.rx_metadata": DELETE,
            },
            datetime(2020, 2, 12, 15, 15, 45, 787000, tzinfo=UTC),
        ),
        (
            {
                "received_at": DELETE,
                "uplink_message.received_at": DELETE,
                "uplink_message.rx_metadata": DELETE,
                "uplink_message.settings.time": DELETE,
            },
            NOW,
        ),
    ]
    for changes, expected in cases:
        doc = fixture_doc(name)
        rx = doc["uplink_message"]["rx_metadata"]
        for dotted, value in changes.items():
            if dotted == "uplink_message.rx_metadata.1":
                rx.append(value)
            else:
                set_path(doc, dotted.split("."), value)
        assert parse(encode(doc), TTN).received_at == expected, changes


def test_ttn_gateway_eui_is_used_without_gateway_id() -> None:
    doc = edited(
        "ttn-v3-uplink-current.json",
        **{"uplink_message.rx_metadata.0.gateway_ids.gateway_id": DELETE},
    )
    assert parse(encode(doc), TTN).radio.gateways[0].gateway_id == "9c5c8e00001a05c4"


def test_ttn_channel_rssi_stands_in_for_rssi() -> None:
    doc = edited("ttn-v3-uplink-current.json", **{"uplink_message.rx_metadata.0.rssi": DELETE})
    assert parse(encode(doc), TTN).radio.gateways[0].rssi == -35.0


def test_ttn_abp_device_without_dev_eui_is_rejected() -> None:
    doc = edited("ttn-v3-uplink-current.json", **{"end_device_ids.dev_eui": DELETE})
    assert_rejected(encode(doc), TTN, "end_device_ids.dev_eui: missing")


def test_chirpstack_v4_received_at_fallbacks() -> None:
    name = "chirpstack-v4-uplink-current.json"
    no_time = edited(name, time=DELETE)
    assert parse(encode(no_time), CS4_JSON).received_at == datetime(
        2022, 7, 18, 9, 34, 15, 571455, tzinfo=UTC
    )
    assert parse(protobuf_body(no_time), CS4_PB).received_at == datetime(
        2022, 7, 18, 9, 34, 15, 571455, tzinfo=UTC
    )
    no_time["rxInfo"][0]["nsTime"] = "2022-07-18T11:34:15.1+02:00"
    assert parse(encode(no_time), CS4_JSON).received_at == datetime(
        2022, 7, 18, 9, 34, 15, 100000, tzinfo=UTC
    )
    del no_time["rxInfo"][0]["nsTime"]
    assert parse(encode(no_time), CS4_JSON).received_at == NOW
    assert parse(protobuf_body(no_time), CS4_PB).received_at == NOW


def test_chirpstack_v4_accepts_pbjson_integer_strings() -> None:
    doc = edited("chirpstack-v4-uplink-current.json", fCnt="4294967295", fPort="2")
    uplink = parse(encode(doc), CS4_JSON)
    assert (uplink.f_cnt, uplink.f_port) == (4_294_967_295, 2)


def test_chirpstack_v3_received_at_fallbacks() -> None:
    name = "chirpstack-v3-uplink-json_v3.json"
    doc = edited(name, **{"rxInfo.0.time": DELETE}, publishedAt="2019-11-08T13:59:26Z")
    assert parse(encode(doc), CS3).received_at == datetime(2019, 11, 8, 13, 59, 26, tzinfo=UTC)
    del doc["publishedAt"]
    assert parse(encode(doc), CS3).received_at == NOW


@pytest.mark.parametrize(
    ("dr", "spreading_factor", "bandwidth"),
    [(0, 12, 125_000), (3, 9, 125_000), (5, 7, 125_000), (6, 7, 250_000), (7, None, None)],
)
def test_chirpstack_v3_json_v3_data_rate_is_eu868(
    dr: int, spreading_factor: int | None, bandwidth: int | None
) -> None:
    doc = edited("chirpstack-v3-uplink-json_v3.json", **{"txInfo.dr": dr})
    radio = parse(encode(doc), CS3).radio
    assert (radio.spreading_factor, radio.bandwidth) == (spreading_factor, bandwidth)


@pytest.mark.parametrize("object_json", ["not json", "[1, 2]", "", '{"a": NaN}'])
def test_chirpstack_v3_unusable_object_json_is_not_fatal(object_json: str) -> None:
    doc = edited("chirpstack-v3-uplink.json", data="GSA=", objectJSON=object_json)
    assert parse(encode(doc), CS3).ns_decoded is None


def test_chirpstack_v3_dev_addr_in_either_marshaler() -> None:
    base64_form = edited("chirpstack-v3-uplink.json", data="GSA=", devAddr="AbzLKQ==")
    hex_form = edited("chirpstack-v3-uplink-json_v3.json", devAddr="01bccb29")
    assert parse(encode(base64_form), CS3).dev_addr == "01BCCB29"
    assert parse(encode(hex_form), CS3).dev_addr == "01BCCB29"


# ---------------------------------------------------------------------------------------------
# Timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-02-12T15:15:46Z", datetime(2020, 2, 12, 15, 15, 46, tzinfo=UTC)),
        ("2020-02-12T15:15:46.5Z", datetime(2020, 2, 12, 15, 15, 46, 500000, tzinfo=UTC)),
        ("2020-02-12T15:15:46.014773143Z", datetime(2020, 2, 12, 15, 15, 46, 14773, tzinfo=UTC)),
        ("2020-02-12T15:15:46.999999999Z", datetime(2020, 2, 12, 15, 15, 46, 999999, tzinfo=UTC)),
        (
            "2022-07-18T09:34:15.775023242+00:00",
            datetime(2022, 7, 18, 9, 34, 15, 775023, tzinfo=UTC),
        ),
        ("2022-07-18T11:34:15+02:00", datetime(2022, 7, 18, 9, 34, 15, tzinfo=UTC)),
        ("2022-07-18T00:30:00-01:30", datetime(2022, 7, 18, 2, 0, tzinfo=UTC)),
        ("2022-07-18t09:34:15z", datetime(2022, 7, 18, 9, 34, 15, tzinfo=UTC)),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_parse_rfc3339(text: str, expected: datetime) -> None:
    parsed = parse_rfc3339(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2022-07-18T09:34:15",  # no offset: ambiguous local time
        "2022-07-18",
        "20220718T093415Z",
        "2022-02-30T00:00:00Z",
        "2022-07-18T24:00:00Z",
        "2022-07-18T09:34:15+0200",
        "2022-07-18T09:34:15+24:00",
        "2022-07-18T09:34:15.Z",
        "0001-01-01T00:00:00+01:00",
        "\uff12\uff10\uff12\uff12-07-18T09:34:15Z",  # full-width digits
        "",
    ],
)
def test_parse_rfc3339_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


# ---------------------------------------------------------------------------------------------
# Malformed messages: each rejected with a detail that names the fault

TTN_FILE = "ttn-v3-uplink-current.json"
CS4_FILE = "chirpstack-v4-uplink-current.json"
CS3_FILE = "chirpstack-v3-uplink.json"
CS3_HEX_FILE = "chirpstack-v3-uplink-json_v3.json"


def ttn(**changes: Any) -> bytes:
    return encode(edited(TTN_FILE, **changes))


def cs4(**changes: Any) -> bytes:
    return encode(edited(CS4_FILE, **changes))


def cs3(**changes: Any) -> bytes:
    return encode(edited(CS3_FILE, **{"data": "GSA=", **changes}))


def cs3_hex(**changes: Any) -> bytes:
    return encode(edited(CS3_HEX_FILE, **changes))


GENERIC_JSON_CASES = [
    ("empty body", b"", "not JSON: Input is a zero-length, empty document at line 1 column 1"),
    ("not JSON", b"hello", "not JSON: unexpected character, expected a JSON value at line 1"),
    ("truncated JSON", b'{"end_device_ids": {', "not JSON: unexpected end of data"),
    ("JSON array", b"[1, 2]", "not a JSON object: got array"),
    ("JSON string", b'"up"', "not a JSON object: got string"),
    ("JSON null", b"null", "not a JSON object: got null"),
    ("invalid UTF-8", b'{"a": "\xff"}', "not JSON: str is not valid UTF-8"),
    ("lone surrogate", b'{"a": "\\ud800"}', "not JSON: no low surrogate in string"),
    (
        "byte order mark",
        b"\xef\xbb\xbf{}",
        "not JSON: UTF-8 byte order mark (BOM) is not supported",
    ),
    (
        "NaN",
        b'{"a": NaN}',
        "not JSON: unexpected character, expected a JSON value at line 1 column 7",
    ),
    ("Infinity", b'{"a": Infinity}', "not JSON: unexpected character"),
    ("nested absurdly", b"[" * 100_000 + b"]" * 100_000, "not JSON: depth limit exceeded"),
    ("huge number", b'{"a": ' + b"9" * 5000 + b"}", "not JSON: number is infinity"),
]

MALFORMED = [
    *[(TTN, *case) for case in GENERIC_JSON_CASES],
    *[(CS4_JSON, *case) for case in GENERIC_JSON_CASES],
    *[(CS3, *case) for case in GENERIC_JSON_CASES],
    (TTN, "no end_device_ids", ttn(end_device_ids=DELETE), "end_device_ids: missing"),
    (
        TTN,
        "end_device_ids a string",
        ttn(end_device_ids="dev1"),
        "end_device_ids: expected an object, got string",
    ),
    (
        TTN,
        "missing dev_eui",
        ttn(**{"end_device_ids.dev_eui": DELETE}),
        "end_device_ids.dev_eui: missing",
    ),
    (
        TTN,
        "bad hex dev_eui",
        ttn(**{"end_device_ids.dev_eui": "0004A30B001C053G"}),
        "end_device_ids.dev_eui: expected 16 hex digits",
    ),
    (
        TTN,
        "short dev_eui",
        ttn(**{"end_device_ids.dev_eui": "0004A30B"}),
        "end_device_ids.dev_eui: expected 16 hex digits",
    ),
    (
        TTN,
        "dev_eui a number",
        ttn(**{"end_device_ids.dev_eui": 42}),
        "end_device_ids.dev_eui: expected 16 hex digits, got number 42",
    ),
    (
        TTN,
        "bad dev_addr",
        ttn(**{"end_device_ids.dev_addr": "00BCB9"}),
        "end_device_ids.dev_addr: expected 8 hex digits",
    ),
    (
        TTN,
        "join event, not an uplink",
        ttn(uplink_message=DELETE, join_accept={}),
        "uplink_message: missing",
    ),
    (
        TTN,
        "uplink_message an array",
        ttn(uplink_message=[]),
        "uplink_message: expected an object, got array",
    ),
    (
        TTN,
        "invalid base64",
        ttn(**{"uplink_message.frm_payload": "gkH"}),
        "uplink_message.frm_payload: invalid base64",
    ),
    (
        TTN,
        "url-safe base64",
        ttn(**{"uplink_message.frm_payload": "-_8="}),
        "uplink_message.frm_payload: invalid base64",
    ),
    (
        TTN,
        "non-ASCII base64",
        ttn(**{"uplink_message.frm_payload": "gkHé"}),
        "uplink_message.frm_payload: invalid base64",
    ),
    (
        TTN,
        "payload a number",
        ttn(**{"uplink_message.frm_payload": 3}),
        "uplink_message.frm_payload: expected a base64 string",
    ),
    (
        TTN,
        "f_cnt wrong type",
        ttn(**{"uplink_message.f_cnt": "ten"}),
        "uplink_message.f_cnt: expected an unsigned integer, got string 'ten'",
    ),
    (
        TTN,
        "f_cnt boolean",
        ttn(**{"uplink_message.f_cnt": True}),
        "uplink_message.f_cnt: expected an unsigned integer, got boolean",
    ),
    (
        TTN,
        "f_cnt fraction",
        ttn(**{"uplink_message.f_cnt": 1.5}),
        "uplink_message.f_cnt: expected an unsigned integer",
    ),
    (
        TTN,
        "f_cnt negative",
        ttn(**{"uplink_message.f_cnt": -1}),
        "uplink_message.f_cnt: -1 is out of range 0..4294967295",
    ),
    (
        TTN,
        "f_cnt over 32 bits",
        ttn(**{"uplink_message.f_cnt": 2**32}),
        "uplink_message.f_cnt: 4294967296 is out of range",
    ),
    (
        TTN,
        "f_port 300",
        ttn(**{"uplink_message.f_port": 300}),
        "uplink_message.f_port: 300 is out of range 0..255",
    ),
    (
        TTN,
        "f_port negative string",
        ttn(**{"uplink_message.f_port": "-1"}),
        "uplink_message.f_port: expected an unsigned integer",
    ),
    (
        TTN,
        "session_key_id a number",
        ttn(**{"uplink_message.session_key_id": 7}),
        "uplink_message.session_key_id: expected a string",
    ),
    (
        TTN,
        "rx_metadata an object",
        ttn(**{"uplink_message.rx_metadata": {}}),
        "uplink_message.rx_metadata: expected an array",
    ),
    (
        TTN,
        "rx_metadata entry a string",
        ttn(**{"uplink_message.rx_metadata": ["gtw1"]}),
        "uplink_message.rx_metadata[0]: expected an object",
    ),
    (
        TTN,
        "no gateway_ids",
        ttn(**{"uplink_message.rx_metadata.0.gateway_ids": DELETE}),
        "uplink_message.rx_metadata[0].gateway_ids: missing",
    ),
    (
        TTN,
        "no gateway id or eui",
        ttn(**{"uplink_message.rx_metadata.0.gateway_ids": {}}),
        "uplink_message.rx_metadata[0].gateway_ids: neither gateway_id nor eui",
    ),
    (
        TTN,
        "gateway id with control characters",
        ttn(**{"uplink_message.rx_metadata.0.gateway_ids.gateway_id": "gtw\n1"}),
        "gateway_ids.gateway_id: expected a printable ASCII gateway ID",
    ),
    (
        TTN,
        "rssi a string",
        ttn(**{"uplink_message.rx_metadata.0.rssi": "strong"}),
        "uplink_message.rx_metadata[0].rssi: expected a finite number",
    ),
    (
        TTN,
        "snr boolean",
        ttn(**{"uplink_message.rx_metadata.0.snr": True}),
        "uplink_message.rx_metadata[0].snr: expected a finite number, got boolean",
    ),
    (
        TTN,
        "frequency not a number",
        ttn(**{"uplink_message.settings.frequency": "868.3 MHz"}),
        "uplink_message.settings.frequency: expected an unsigned integer",
    ),
    (
        TTN,
        "spreading factor negative",
        ttn(**{"uplink_message.settings.data_rate.lora.spreading_factor": -7}),
        "spreading_factor: -7 is out of range",
    ),
    (
        TTN,
        "received_at not a time",
        ttn(received_at="yesterday"),
        "received_at: not an RFC 3339 timestamp: 'yesterday'",
    ),
    (
        TTN,
        "received_at impossible date",
        ttn(received_at="2020-02-30T15:15:46Z"),
        "received_at: day is out of range for month",
    ),
    (
        TTN,
        "received_at a number",
        ttn(received_at=1581520546),
        "received_at: expected an RFC 3339 timestamp, got number",
    ),
    (
        TTN,
        "received_at without offset",
        ttn(received_at="2020-02-12T15:15:46"),
        "received_at: not an RFC 3339 timestamp",
    ),
    (CS4_JSON, "TTN message", fixture_bytes(TTN_FILE), "deviceInfo: missing"),
    (CS4_JSON, "no deviceInfo", cs4(deviceInfo=DELETE), "deviceInfo: missing"),
    (
        CS4_JSON,
        "missing dev_eui",
        cs4(**{"deviceInfo.devEui": DELETE}),
        "deviceInfo.devEui: missing",
    ),
    (
        CS4_JSON,
        "bad hex dev_eui",
        cs4(**{"deviceInfo.devEui": "01010101010101zz"}),
        "deviceInfo.devEui: expected 16 hex digits",
    ),
    (CS4_JSON, "bad devAddr", cs4(devAddr="0018944"), "devAddr: expected 8 hex digits"),
    (CS4_JSON, "invalid base64", cs4(data="qg="), "data: invalid base64"),
    (
        CS4_JSON,
        "fCnt wrong type",
        cs4(fCnt="ten"),
        "fCnt: expected an unsigned integer, got string 'ten'",
    ),
    (CS4_JSON, "fCnt over 32 bits", cs4(fCnt="4294967296"), "fCnt: 4294967296 is out of range"),
    (CS4_JSON, "f_port 300", cs4(fPort=300), "fPort: 300 is out of range 0..255"),
    (CS4_JSON, "rxInfo an object", cs4(rxInfo={}), "rxInfo: expected an array"),
    (
        CS4_JSON,
        "gatewayId missing",
        cs4(**{"rxInfo.0.gatewayId": DELETE}),
        "rxInfo[0].gatewayId: missing",
    ),
    (
        CS4_JSON,
        "gatewayId not hex",
        cs4(**{"rxInfo.0.gatewayId": "rooftop"}),
        "rxInfo[0].gatewayId: expected 16 hex digits",
    ),
    (
        CS4_JSON,
        "snr a string",
        cs4(**{"rxInfo.0.snr": "10.5"}),
        "rxInfo[0].snr: expected a finite number",
    ),
    (
        CS4_JSON,
        "frequency negative",
        cs4(**{"txInfo.frequency": -1}),
        "txInfo.frequency: -1 is out of range",
    ),
    (
        CS4_JSON,
        "modulation a list",
        cs4(**{"txInfo.modulation": []}),
        "txInfo.modulation: expected an object",
    ),
    (CS4_JSON, "time not a time", cs4(time="2022-07-18"), "time: not an RFC 3339 timestamp"),
    (
        CS4_JSON,
        "nsTime bad without time",
        cs4(time=DELETE, **{"rxInfo.0.nsTime": "soon"}),
        "rxInfo[0].nsTime: not an RFC 3339 timestamp",
    ),
    (
        CS4_JSON,
        "deduplicationId a number",
        cs4(deduplicationId=1),
        "deduplicationId: expected a string",
    ),
    (CS3, "missing devEUI", cs3(devEUI=DELETE), "devEUI: missing"),
    (
        CS3,
        "devEUI a number",
        cs3(devEUI=5),
        "devEUI: expected 16 hex digits or base64 of 8 bytes, got number 5",
    ),
    (CS3, "devEUI invalid base64", cs3(devEUI="AgICAgICAg!="), "devEUI: invalid base64"),
    (
        CS3,
        "devEUI base64 of 4 bytes",
        cs3(devEUI="AgICAg=="),
        "devEUI: expected base64 of 8 bytes, got 4",
    ),
    (
        CS3,
        "devEUI hex not hex",
        cs3_hex(devEUI="020202020202020x"),
        "devEUI: expected 16 hex digits",
    ),
    (CS3, "placeholder data", fixture_bytes(CS3_FILE), "data: invalid base64"),
    (CS3, "data a list", cs3(data=[1]), "data: expected a base64 string, got array"),
    (CS3, "fCnt wrong type", cs3(fCnt="ten"), "fCnt: expected an unsigned integer"),
    (CS3, "f_port 300", cs3_hex(fPort=300), "fPort: 300 is out of range 0..255"),
    (
        CS3,
        "devAddr base64 of 3 bytes",
        cs3(devAddr="AbzL"),
        "devAddr: expected base64 of 4 bytes, got 3",
    ),
    (
        CS3,
        "hex gatewayID in json marshaler",
        cs3(**{"rxInfo.0.gatewayID": "0303030303030303"}),
        "rxInfo[0].gatewayID: expected base64 of 8 bytes",
    ),
    (
        CS3,
        "base64 gatewayID in json_v3",
        cs3_hex(**{"rxInfo.0.gatewayID": "AwMDAwMDAwM="}),
        "rxInfo[0].gatewayID: expected 16 hex digits",
    ),
    (
        CS3,
        "uplinkID not a UUID",
        cs3_hex(**{"rxInfo.0.uplinkID": "8e1321f0-6aba-4403-8285-229b8bcdd11x"}),
        "rxInfo[0].uplinkID: expected a UUID",
    ),
    (
        CS3,
        "uplinkID base64 of 4 bytes",
        cs3(**{"rxInfo.0.uplinkID": "jhMh8A=="}),
        "rxInfo[0].uplinkID: expected base64 of 16 bytes",
    ),
    (
        CS3,
        "rxInfo time bad",
        cs3(**{"rxInfo.0.time": "2019-11-08 13:59"}),
        "rxInfo[0].time: not an RFC 3339 timestamp",
    ),
    (CS3, "dr out of range", cs3_hex(**{"txInfo.dr": -1}), "txInfo.dr: -1 is out of range"),
    (
        CS3,
        "bandwidth a string",
        cs3(**{"txInfo.loRaModulationInfo.bandwidth": "wide"}),
        "txInfo.loRaModulationInfo.bandwidth: expected an unsigned integer",
    ),
]


@pytest.mark.parametrize(
    ("fmt", "body", "expected_detail"),
    [pytest.param(fmt, body, detail, id=f"{fmt}: {name}") for fmt, name, body, detail in MALFORMED],
)
def test_malformed_json_is_rejected(fmt: SourceFormat, body: bytes, expected_detail: str) -> None:
    assert_rejected(body, fmt, expected_detail)


def protobuf_event(**changes: Any) -> integration_pb2.UplinkEvent:
    event = integration_pb2.UplinkEvent()
    event.ParseFromString(protobuf_body(fixture_doc(CS4_FILE)))
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        target: Any = event
        for key in parents:
            target = target[int(key)] if key.isdigit() else getattr(target, key)
        setattr(target, last, value)
    return event


def protobuf_without(field: str) -> bytes:
    event = protobuf_event()
    event.ClearField(field)
    body: bytes = event.SerializeToString()
    return body


VALID_PROTOBUF = protobuf_body(fixture_doc(CS4_FILE))

MALFORMED_PROTOBUF = [
    ("empty body", b"", "device_info: missing"),
    ("truncated protobuf", VALID_PROTOBUF[:-3], "not a ChirpStack v4 UplinkEvent protobuf"),
    ("garbage", b"\xff\xff\xff\xff", "not a ChirpStack v4 UplinkEvent protobuf"),
    ("JSON body", fixture_bytes(CS4_FILE), "not a ChirpStack v4 UplinkEvent protobuf"),
    ("invalid UTF-8 string", b"\x0a\x01\xff", "not a ChirpStack v4 UplinkEvent protobuf: "),
    ("no device_info", protobuf_without("device_info"), "device_info: missing"),
    (
        "missing dev_eui",
        protobuf_event(**{"device_info.dev_eui": ""}).SerializeToString(),
        "device_info.dev_eui: missing",
    ),
    (
        "bad hex dev_eui",
        protobuf_event(**{"device_info.dev_eui": "xyz"}).SerializeToString(),
        "device_info.dev_eui: expected 16 hex digits",
    ),
    (
        "bad dev_addr",
        protobuf_event(dev_addr="0x189440").SerializeToString(),
        "dev_addr: expected 8 hex digits",
    ),
    (
        "f_port 300",
        protobuf_event(f_port=300).SerializeToString(),
        "f_port: 300 is out of range 0..255",
    ),
    (
        "gateway_id missing",
        protobuf_event(**{"rx_info.0.gateway_id": ""}).SerializeToString(),
        "rx_info[0].gateway_id: missing",
    ),
    (
        "time nanos out of range",
        protobuf_event(**{"time.nanos": 1_000_000_000}).SerializeToString(),
        "time: nanos 1000000000 out of range",
    ),
    (
        "time seconds out of range",
        protobuf_event(**{"time.seconds": 2**62}).SerializeToString(),
        "time: seconds 4611686018427387904 out of range",
    ),
]


@pytest.mark.parametrize(
    ("body", "expected_detail"),
    [pytest.param(body, detail, id=name) for name, body, detail in MALFORMED_PROTOBUF],
)
def test_malformed_protobuf_is_rejected(body: bytes, expected_detail: str) -> None:
    assert_rejected(body, CS4_PB, expected_detail)


def test_protobuf_object_with_nan_is_dropped_not_fatal() -> None:
    event = protobuf_event()
    event.object["temperature"] = float("nan")
    assert parse(event.SerializeToString(), CS4_PB).ns_decoded is None


def test_unknown_format_is_an_envelope_error() -> None:
    assert_rejected(b"{}", "lorawan-server", "unknown source format")  # type: ignore[arg-type]


def test_safety_net_turns_a_parser_bug_into_an_envelope_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object) -> Uplink:
        raise KeyError("dev_eui")

    monkeypatch.setitem(envelope._PARSERS, TTN, broken)
    with pytest.raises(EnvelopeError, match="malformed message") as caught:
        parse(b"{}", TTN)
    assert isinstance(caught.value.__cause__, KeyError)


# ---------------------------------------------------------------------------------------------
# Dedup keys


def key(body: bytes, fmt: SourceFormat, *, now: datetime = NOW) -> bytes:
    return parse(body, fmt, now=now).dedup_key


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_redelivery_gives_the_same_key(name: str) -> None:
    body, fmt = documented_body(name), FIXTURE_FORMATS[name]
    assert key(body, fmt) == key(bytes(body), fmt, now=NOW + timedelta(hours=1))


DIFFERENT_UPLINKS: list[tuple[str, SourceFormat, Callable[[], bytes], Callable[[], bytes]]] = [
    ("ttn next f_cnt", TTN, lambda: ttn(), lambda: ttn(**{"uplink_message.f_cnt": 2})),
    (
        "ttn rejoin restarts f_cnt",
        TTN,
        lambda: ttn(),
        lambda: ttn(**{"uplink_message.session_key_id": "AXA50tHUGUucuzS/bCGMOA=="}),
    ),
    (
        "ttn frame counter reset in the same session",
        TTN,
        lambda: ttn(),
        lambda: ttn(
            received_at="2020-02-13T09:00:00.1Z",
            **{"uplink_message.received_at": "2020-02-13T09:00:00Z"},
        ),
    ),
    (
        "ttn without session key, next f_cnt",
        TTN,
        lambda: ttn(**{"uplink_message.session_key_id": DELETE}),
        lambda: ttn(**{"uplink_message.session_key_id": DELETE, "uplink_message.f_cnt": 2}),
    ),
    (
        "ttn without session key, rejoin",
        TTN,
        lambda: ttn(**{"uplink_message.session_key_id": DELETE}),
        lambda: ttn(
            **{"uplink_message.session_key_id": DELETE, "end_device_ids.dev_addr": "01BCB929"},
            received_at="2020-02-12T16:00:00Z",
        ),
    ),
    (
        "chirpstack v4 next uplink",
        CS4_JSON,
        lambda: cs4(),
        lambda: cs4(fCnt=11, deduplicationId="5c8d1a4e-0b7a-4f54-9d2e-6f3e1b2a9c10"),
    ),
    (
        "chirpstack v4 without deduplicationId, next f_cnt",
        CS4_JSON,
        lambda: cs4(deduplicationId=DELETE),
        lambda: cs4(deduplicationId=DELETE, fCnt=11),
    ),
    (
        "chirpstack v4 without deduplicationId, rejoin",
        CS4_JSON,
        lambda: cs4(deduplicationId=DELETE),
        lambda: cs4(deduplicationId=DELETE, time="2022-07-18T10:00:00+00:00"),
    ),
    ("chirpstack v3 next f_cnt", CS3, lambda: cs3_hex(), lambda: cs3_hex(fCnt=11)),
    (
        "chirpstack v3 rejoin restarts f_cnt",
        CS3,
        lambda: cs3_hex(),
        lambda: cs3_hex(**{"rxInfo.0.uplinkID": "1d6b7e0e-1c1a-4d8e-a5b5-3f1f2b7d9a01"}),
    ),
    (
        "chirpstack v3 without uplinkIDs, rejoin",
        CS3,
        lambda: cs3_hex(**{"rxInfo.0.uplinkID": DELETE}),
        lambda: cs3_hex(**{"rxInfo.0.uplinkID": DELETE, "rxInfo.0.time": "2019-11-08T14:30:00Z"}),
    ),
]


@pytest.mark.parametrize(
    ("fmt", "first", "second"),
    [pytest.param(fmt, a, b, id=name) for name, fmt, a, b in DIFFERENT_UPLINKS],
)
def test_different_uplinks_get_different_keys(
    fmt: SourceFormat, first: Callable[[], bytes], second: Callable[[], bytes]
) -> None:
    assert key(first(), fmt) != key(second(), fmt)


def test_ttn_key_takes_the_network_servers_time() -> None:
    # The Application Server's received_at changes when it takes an uplink again from the
    # network server; the network server's own time does not.
    again = ttn(received_at="2020-02-12T15:16:00Z")
    assert key(again, TTN) == key(ttn(), TTN)
    # Without one, the message's time stands in.
    without = ttn(**{"uplink_message.received_at": DELETE})
    assert key(without, TTN) != key(ttn(), TTN)
    assert key(without, TTN) == key(ttn(**{"uplink_message.received_at": DELETE}), TTN)


def test_ttn_key_reads_the_network_servers_time_as_an_instant() -> None:
    at = {"uplink_message.received_at": "2020-02-12T15:15:45.789585559Z"}
    same = [
        {"uplink_message.received_at": "2020-02-12T16:15:45.7895851+01:00"},
        {"uplink_message.received_at": "2020-02-12t15:15:45.789585z"},
    ]
    assert {key(ttn(**changes), TTN) for changes in [at, *same]} == {key(ttn(**at), TTN)}
    with pytest.raises(EnvelopeError, match=r"uplink_message\.received_at: expected an RFC"):
        parse(ttn(**{"uplink_message.received_at": 1581520545}), TTN)


# The keys uplinks stored before migration 0008 have, computed then.
LEGACY_KEYS = {
    "ttn-v3-uplink.json": "960150f62003532dde96886924910b50",
    "ttn-v3-uplink-current.json": "960150f62003532dde96886924910b50",
    "ttn-v3-uplink-mqtt-doc.json": "a63b5ea53203fd0403c2a6c2d90cea90",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_legacy_key_is_the_key_before_migration_0008(name: str) -> None:
    uplink = parse(documented_body(name), FIXTURE_FORMATS[name])
    legacy = uplink.legacy_key.hex() if uplink.legacy_key else None
    assert legacy == LEGACY_KEYS.get(name)
    assert uplink.dedup_key != uplink.legacy_key


def test_both_chirpstack_v3_marshalers_give_the_same_key() -> None:
    assert key(cs3(), CS3) == key(cs3_hex(), CS3)


def test_nil_uplink_ids_fall_back_to_time() -> None:
    nil = "00000000-0000-0000-0000-000000000000"
    with_nil = cs3_hex(**{"rxInfo.0.uplinkID": nil})
    without = cs3_hex(**{"rxInfo.0.uplinkID": DELETE})
    assert key(with_nil, CS3) == key(without, CS3)
    assert key(with_nil, CS3) != key(cs3_hex(), CS3)


def test_message_without_time_or_id_is_keyed_by_its_body() -> None:
    # No id and no time: only the body itself is stable across redeliveries.
    body = cs3_hex(**{"rxInfo.0.uplinkID": DELETE, "rxInfo.0.time": DELETE})
    first = parse(body, CS3, now=NOW)
    again = parse(body, CS3, now=NOW + timedelta(seconds=5))
    assert first.received_at == NOW
    assert first.dedup_key == again.dedup_key
    assert first.dedup_key != key(body + b" ", CS3)


def test_one_uplink_in_two_layouts_gets_one_key() -> None:
    # The TTN verbatim and current files, the two v4 files and the two v3 marshalers each
    # describe one uplink (same session and f_cnt, deduplicationId, uplinkID).
    keys = {key(documented_body(name), FIXTURE_FORMATS[name]) for name in EXPECTED}
    assert len(keys) == 4


def test_same_parts_in_different_families_get_different_keys() -> None:
    time = "2022-07-18T09:34:15Z"
    ttn_body = ttn(
        received_at=time,
        **{
            "end_device_ids.dev_eui": "0101010101010101",
            "end_device_ids.dev_addr": "00189440",
            "uplink_message.f_cnt": 10,
            "uplink_message.session_key_id": DELETE,
        },
    )
    cs4_body = cs4(time=time, deduplicationId=DELETE)
    assert key(ttn_body, TTN) != key(cs4_body, CS4_JSON)


# ---------------------------------------------------------------------------------------------
# Properties: whatever arrives, the result is an Uplink or an EnvelopeError


def accepts_or_explains(body: bytes, fmt: SourceFormat) -> None:
    try:
        uplink = parse(body, fmt)
    except EnvelopeError as error:
        assert_explained(error)
        return
    assert len(uplink.dedup_key) == 16
    assert len(uplink.dev_eui) == 16
    assert uplink.received_at.tzinfo is UTC
    assert uplink.f_port is None or 0 <= uplink.f_port <= 255
    assert 0 <= uplink.f_cnt <= 2**32 - 1


VOCABULARY = sorted(
    {
        key
        for name in EXPECTED
        for key in json.dumps(fixture_doc(name)).split('"')[1::2]
        if key.isidentifier()
    }
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["GSA=", "0101010101010101", "2022-07-18T09:34:15Z", "AgICAgICAgI="])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(VOCABULARY) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)
json_objects = st.dictionaries(
    st.sampled_from(VOCABULARY) | st.text(max_size=8), json_values, max_size=8
)
ALL_FORMATS = st.sampled_from(list(SourceFormat))
PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(body=st.binary(max_size=512), fmt=ALL_FORMATS)
def test_arbitrary_bytes(body: bytes, fmt: SourceFormat) -> None:
    accepts_or_explains(body, fmt)


@PROPERTY_SETTINGS
@given(doc=json_objects, fmt=ALL_FORMATS)
def test_arbitrary_json_objects(doc: dict[str, Any], fmt: SourceFormat) -> None:
    accepts_or_explains(encode(doc), fmt)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON document, the root excluded."""
    children: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    found = []
    for step, child in children:
        found.append((*prefix, step))
        found.extend(paths(child, (*prefix, step)))
    return found


def mutate(doc: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        candidates = paths(doc)
        if not candidates:
            break
        *parents, last = data.draw(st.sampled_from(candidates), label="path")
        target: Any = doc
        for step in parents:
            target = target[step]
        if data.draw(st.booleans(), label="delete"):
            del target[last]
        else:
            target[last] = data.draw(json_values, label="value")
    return doc


@PROPERTY_SETTINGS
@given(name=st.sampled_from(sorted(EXPECTED)), data=st.data())
def test_mutated_documented_messages(name: str, data: st.DataObject) -> None:
    doc = mutate(fixture_doc(name), data)
    for fmt in JSON_FORMATS:
        accepts_or_explains(encode(doc), fmt)
    if FIXTURE_FORMATS[name] is CS4_JSON:
        try:
            body = protobuf_body(doc)
        except json_format.ParseError:
            return
        accepts_or_explains(body, CS4_PB)


@PROPERTY_SETTINGS
@given(
    name=st.sampled_from(["chirpstack-v4-uplink.json", CS4_FILE]),
    cut=st.integers(0, 400),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
)
def test_mutated_protobuf(name: str, cut: int, flips: list[tuple[int, int]]) -> None:
    body = bytearray(protobuf_body(fixture_doc(name)))
    for position, byte in flips:
        if position < len(body):
            body[position] = byte
    accepts_or_explains(bytes(body[: len(body) - cut % (len(body) + 1)]), CS4_PB)
