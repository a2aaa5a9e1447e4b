"""Envelope stage: one pure parser per network-server format; message body in, `Uplink` out.

`parse_envelope` returns an `Uplink` or raises `EnvelopeError`, whose detail names the field and
what is wrong with it ("uplink_message.frm_payload: invalid base64 (Incorrect padding)"). No other
exception escapes.

Formats (`SourceFormat`)
    ttn-v3                  The Things Stack v3 JSON, topic v3/{app}@{tenant}/devices/{id}/up.
    chirpstack-v4-json      ChirpStack v4 UplinkEvent as pbjson: camelCase, integers may be
                            strings, fields equal to their default may be left out.
    chirpstack-v4-protobuf  The same UplinkEvent as binary protobuf.
    chirpstack-v3-json      ChirpStack Application Server v3, either marshaler, told apart per
                            message by the form of devEUI: "json" (protobuf JSON: bytes fields in
                            base64, objectJSON a string, loRaModulationInfo with kHz) or the default
                            "json_v3" (hex EUIs, UUID uplinkIDs, `object`, txInfo {frequency, dr}).

The body is authoritative. The topic is not used for identity: a DevEUI in a ChirpStack topic that
disagrees with the body is ignored, and a message without a DevEUI is rejected, including TTN ABP
devices registered without one, because the hub identifies devices by DevEUI.

Fields
    received_at  The message's own time, truncated to microseconds, so that every redelivery gets
                 the same value. TTN: received_at, else uplink_message.received_at, else the
                 earliest rx_metadata received_at (or time when an entry lacks it), else
                 settings.time. ChirpStack v4: time, else the earliest rxInfo nsTime/gwTime/time.
                 ChirpStack v3: the earliest rxInfo time, else publishedAt. Only a message with
                 none of these gets `now`.
    f_port       None when TTN or ChirpStack v3 leave it out. ChirpStack v4 gives 0 instead: its
                 protobuf encoding cannot tell a missing port from port 0, and both encodings of
                 an uplink must parse alike.
    f_cnt        0 when left out (proto3 JSON omits zero values).
    payload      Strict standard base64 with padding; anything else is an EnvelopeError. That
                 includes the "..." placeholder of the documented ChirpStack v3 example.
    radio        One GatewayReception per rx_metadata/rxInfo entry. Gateway EUIs are lower-case
                 hex; TTN gateway IDs are kept as given. Frequency and bandwidth are in Hz. A 0
                 (proto3's "unset") becomes None. ChirpStack v3 json_v3 has only a data rate,
                 which is read as EU868, the band of Dortmund and Schwerte: DR0..DR5 = SF12..SF7
                 at 125 kHz, DR6 = SF7 at 250 kHz, DR7 = FSK (no spreading factor).
    ns_decoded   The network server's own decoded object when it is a JSON object. Anything else
                 (no codec, an objectJSON that is not valid JSON, a list) gives None and does not
                 reject the uplink: the hub decodes payloads itself.

Fields are validated when they are used: a malformed field that the hub never reads (a tag, a
location, a gateway time when the message has its own) does not reject the uplink.

Dedup key
    blake2b(digest_size=16) over the parts as netstrings ("6:ttn-v3,"). The first part is the family
    ("ttn-v3", "chirpstack-v4", "chirpstack-v3") and the second the scheme, so keys of different
    families or schemes never hash the same input:

    ttn-v3         "session", dev_eui, session_key_id, f_cnt, and the network server's
                   reception time: uplink_message.received_at, else received_at as above. A
                   rejoin draws a new session key, but an ABP device whose frame counter
                   resets (The Things Stack allows it per device) keeps its session, and its
                   f_cnt repeats: the reception time tells those uplinks apart. It is the same
                   in every copy of one uplink: MQTT and the Storage Integration hand on the
                   same message, and should the Application Server take an uplink from the
                   network server again, its own received_at changes but not the network
                   server's. Without any time: "body". Without a session_key_id: "time",
                   dev_eui, dev_addr, f_cnt, received_at.
    chirpstack-v4  "dedup", deduplicationId. This is a UUID the network server draws per uplink,
                   the same in the JSON and the protobuf encoding. Without one: "time", dev_eui,
                   dev_addr, f_cnt, received_at.
    chirpstack-v3  "uplink", dev_eui, f_cnt, the sorted rxInfo uplinkIDs. These are UUIDs drawn
                   per reception; they are normalised so that both marshalers give the same key,
                   and nil UUIDs are ignored. Without any: "time", dev_eui, f_cnt, received_at.
    any            "body", the raw body, when the message has neither a unique id nor a time of
                   its own. A redelivery is byte-identical.

    Until migration 0008 a ttn-v3 key with a session_key_id had no time: "session", dev_eui,
    session_key_id, f_cnt, and uplinks stored then are stored under it. `Uplink.legacy_key`
    carries that key, so that the store recognises their redeliveries (ingest/store.py).

    The key identifies an uplink; its content (DevEUI, f_port, f_cnt, payload) is the witness
    that a second message under a key is a redelivery: the store keeps a message whose key is
    taken by other content as a dead letter, never in place of the stored uplink.
"""

from __future__ import annotations

import binascii
import math
import re
import struct
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from hashlib import blake2b
from typing import Any

import orjson
from chirpstack_api.integration import integration_pb2
from google.protobuf.message import DecodeError

from datahub.domain import City, GatewayReception, Radio, SourceFormat, Uplink
from datahub.errors import EnvelopeError

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1

_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_HEX16 = re.compile(r"[0-9A-Fa-f]{16}")
_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NIL_UUID = "00000000-0000-0000-0000-000000000000"
# EU868 data rates as (spreading factor, bandwidth in Hz); DR7 is FSK.
_EU868_DATA_RATES: dict[int, tuple[int | None, int | None]] = {
    0: (12, 125_000),
    1: (11, 125_000),
    2: (10, 125_000),
    3: (9, 125_000),
    4: (8, 125_000),
    5: (7, 125_000),
    6: (7, 250_000),
    7: (None, None),
}
_FLOAT32 = struct.Struct("<f")

_Parser = Callable[[bytes, str, City, datetime], Uplink]


def parse_envelope(
    body: bytes,
    *,
    format: SourceFormat,
    source: str,
    city: City,
    topic: str,
    now: datetime,
) -> Uplink:
    """Parse one network-server message into an Uplink, or raise EnvelopeError saying why."""
    parser = _PARSERS.get(format)
    if parser is None:
        raise EnvelopeError(f"unknown source format {format!r}")
    try:
        return parser(body, source, city, now)
    except EnvelopeError:
        raise
    except (ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as exc:
        # A safety net, never reached by any known malformation (the tests check that): a
        # message must become a dead letter, not an exception that stalls the pipeline.
        raise EnvelopeError(f"malformed message ({type(exc).__name__}: {exc})") from exc


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime, truncated to microseconds."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {value[:64]!r}")
    date, time, fraction, zone = match.groups()
    # The regex checks the RFC 3339 shape; datetime.fromisoformat, fast and in C, checks the
    # ranges. It gets a canonical form: network servers send nanoseconds and datetime holds
    # microseconds, so the fraction is cut (never rounded: 59.9999999 stays in its second).
    if zone == "Z" or zone == "z":
        zone = "+00:00"
    try:
        result = datetime.fromisoformat(f"{date}T{time}{fraction[:7] if fraction else ''}{zone}")
        return result if result.tzinfo is UTC else result.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"timestamp out of range: {value[:64]!r}") from exc


# ---------------------------------------------------------------------------------------------
# Field helpers shared by the JSON formats. Each takes the value and its path for the detail.


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return f"number {value!r}"[:48]
    if isinstance(value, str):
        return f"string {value[:32]!r}"
    if isinstance(value, list):
        return "array"
    return "object"


def _load_object(body: bytes) -> dict[str, Any]:
    # orjson: three times faster than json on these messages (about 5 against 16 µs for a TTN
    # uplink), and strict RFC 8259: no NaN, valid UTF-8 only, no lone surrogates, depth <= 1024.
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    if type(doc) is not dict:
        raise EnvelopeError(f"not a JSON object: got {_describe(doc)}")
    return doc


def _object(value: Any, path: str) -> dict[str, Any] | None:
    """Return an object field; None when it is missing or null (proto3 JSON's default)."""
    if value is None or type(value) is dict:
        return value
    raise EnvelopeError(f"{path}: expected an object, got {_describe(value)}")


def _required_object(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        raise EnvelopeError(f"{path}: missing")
    if type(value) is dict:
        return value
    raise EnvelopeError(f"{path}: expected an object, got {_describe(value)}")


def _array(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if type(value) is list:
        return value
    raise EnvelopeError(f"{path}: expected an array, got {_describe(value)}")


def _entry(value: Any, path: str) -> dict[str, Any]:
    if type(value) is dict:
        return value
    raise EnvelopeError(f"{path}: expected an object, got {_describe(value)}")


def _uint(value: Any, path: str, maximum: int = UINT32_MAX) -> int:
    """Read an unsigned integer; proto3 JSON also allows decimal strings and integral floats."""
    if type(value) is int:
        number = value
    elif (type(value) is str and 0 < len(value) <= 20 and value.isascii() and value.isdigit()) or (
        type(value) is float and value.is_integer()
    ):
        number = int(value)
    else:
        raise EnvelopeError(f"{path}: expected an unsigned integer, got {_describe(value)}")
    if 0 <= number <= maximum:
        return number
    raise EnvelopeError(f"{path}: {number} is out of range 0..{maximum}")


def _optional_uint(value: Any, path: str, maximum: int = UINT32_MAX) -> int | None:
    """Read a physical quantity; missing and proto3's 0 both mean unknown."""
    if value is None:
        return None
    return _uint(value, path, maximum) or None


def _number(value: Any, path: str) -> float | None:
    if value is None:
        return None
    if type(value) is float:
        if math.isfinite(value):
            return value
    elif type(value) is int and -(2**64) <= value <= 2**64:  # orjson's integers are 64-bit
        return float(value)
    raise EnvelopeError(f"{path}: expected a finite number, got {_describe(value)}")


def _string(value: Any, path: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise EnvelopeError(f"{path}: expected a string, got {_describe(value)}")


def _hex_eui(value: Any, path: str) -> str:
    """Return a 16-hex-digit EUI in upper case."""
    if value is None:
        raise EnvelopeError(f"{path}: missing")
    if type(value) is str and _HEX16.fullmatch(value):
        return value.upper()
    raise EnvelopeError(f"{path}: expected 16 hex digits, got {_describe(value)}")


def _hex_dev_addr(value: Any, path: str) -> str | None:
    if value is None or value == "":
        return None
    if type(value) is str and _HEX8.fullmatch(value):
        return value.upper()
    raise EnvelopeError(f"{path}: expected 8 hex digits, got {_describe(value)}")


def _base64(value: Any, path: str) -> bytes:
    """Decode strict standard base64; a missing field is proto3's empty bytes."""
    if value is None:
        return b""
    if type(value) is not str:
        raise EnvelopeError(f"{path}: expected a base64 string, got {_describe(value)}")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except ValueError as exc:  # binascii.Error, or a non-ASCII string
        raise EnvelopeError(f"{path}: invalid base64 ({exc})") from exc


def _base64_sized(value: Any, path: str, size: int) -> bytes:
    if value is None:
        raise EnvelopeError(f"{path}: missing")
    data = _base64(value, path)
    if len(data) != size:
        raise EnvelopeError(f"{path}: expected base64 of {size} bytes, got {len(data)}")
    return data


def _gateway_name(value: Any, path: str) -> str | None:
    """Accept a gateway ID as the network server names it (TTN: "eui-…", "packetbroker")."""
    if value is None or value == "":
        return None
    if type(value) is str and len(value) <= 128 and value.isascii() and value.isprintable():
        return value
    raise EnvelopeError(f"{path}: expected a printable ASCII gateway ID, got {_describe(value)}")


def _time(value: Any, path: str) -> datetime:
    if type(value) is not str:
        raise EnvelopeError(f"{path}: expected an RFC 3339 timestamp, got {_describe(value)}")
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise EnvelopeError(f"{path}: {exc}") from exc


def _time_part(value: Any, path: str) -> str:
    """Write an RFC 3339 timestamp as a dedup key part: UTC to the microsecond, truncated as
    `parse_rfc3339` truncates. A time in UTC already (as network servers write them) is
    rewritten as text, without the cost of a datetime: its shape is checked, not its
    ranges, as a key part need not be a valid time, only the same in every copy."""
    if type(value) is str and (match := _RFC3339.fullmatch(value)) and match[4] in ("Z", "z"):
        return f"{match[1]}T{match[2]}.{(match[3] or '.')[1:7]:0<6}Z"
    return _utc_text(_time(value, path))


def _utc_text(time: datetime) -> str:
    return f"{time:%Y-%m-%dT%H:%M:%S}.{time.microsecond:06d}Z"


def _earliest(candidates: list[tuple[Any, str]]) -> datetime | None:
    times = [_time(value, path) for value, path in candidates]
    return min(times) if times else None


def _or_default(value: Any, default: Any) -> Any:
    """Apply proto3 JSON's rule that a missing or null field has its type's default."""
    return default if value is None else value


def _decoded_object(value: Any) -> dict[str, Any] | None:
    return value if type(value) is dict else None


def _dedup_hash(*parts: str | int) -> Any:
    """Start hashing the parts as netstrings ("6:ttn-v3,"): no two part lists give the same
    input, and more parts may follow (`_netstring`)."""
    text = "".join([f"{len(part)}:{part}," for part in map(str, parts)])
    # surrogatepass: hash, never raise, should a lone surrogate ever get past orjson and upb.
    return blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16)


def _netstring(part: str) -> bytes:
    return f"{len(part)}:{part},".encode("utf-8", "surrogatepass")


def _dedup_key(*parts: str | int) -> bytes:
    """Hash the parts as netstrings: the dedup key of exactly these parts."""
    digest: bytes = _dedup_hash(*parts).digest()
    return digest


def _body_key(family: str, body: bytes) -> bytes:
    """Key a message that has neither a unique id nor a time of its own by its raw body."""
    return blake2b(f"{len(family)}:{family},4:body,".encode() + body, digest_size=16).digest()


# ---------------------------------------------------------------------------------------------
# The Things Stack v3


def _parse_ttn_v3(body: bytes, source: str, city: City, now: datetime) -> Uplink:
    doc = _load_object(body)
    ids = _required_object(doc.get("end_device_ids"), "end_device_ids")
    dev_eui = _hex_eui(ids.get("dev_eui"), "end_device_ids.dev_eui")
    dev_addr = _hex_dev_addr(ids.get("dev_addr"), "end_device_ids.dev_addr")
    up = _required_object(doc.get("uplink_message"), "uplink_message")

    f_port_value = up.get("f_port")
    f_port = None if f_port_value is None else _uint(f_port_value, "uplink_message.f_port", 255)
    f_cnt_value = up.get("f_cnt")
    f_cnt = 0 if f_cnt_value is None else _uint(f_cnt_value, "uplink_message.f_cnt")
    payload = _base64(up.get("frm_payload"), "uplink_message.frm_payload")
    session_key_id = _string(up.get("session_key_id"), "uplink_message.session_key_id")

    gateways = []
    rx_times: list[tuple[Any, str]] = []
    for index, item in enumerate(_array(up.get("rx_metadata"), "uplink_message.rx_metadata")):
        path = f"uplink_message.rx_metadata[{index}]"
        entry = _entry(item, path)
        gateway_ids = _required_object(entry.get("gateway_ids"), f"{path}.gateway_ids")
        gateway_id = _gateway_name(gateway_ids.get("gateway_id"), f"{path}.gateway_ids.gateway_id")
        if gateway_id is None:
            eui = gateway_ids.get("eui")
            if eui is None:
                raise EnvelopeError(f"{path}.gateway_ids: neither gateway_id nor eui")
            gateway_id = _hex_eui(eui, f"{path}.gateway_ids.eui").lower()
        rssi = entry.get("rssi")
        if rssi is None:
            rssi = entry.get("channel_rssi")
        gateways.append(
            GatewayReception(
                gateway_id, _number(rssi, f"{path}.rssi"), _number(entry.get("snr"), f"{path}.snr")
            )
        )
        if (value := entry.get("received_at")) is not None:
            rx_times.append((value, f"{path}.received_at"))
        elif (value := entry.get("time")) is not None:
            rx_times.append((value, f"{path}.time"))

    settings = _object(up.get("settings"), "uplink_message.settings") or {}
    spreading_factor = bandwidth = None
    data_rate = _object(settings.get("data_rate"), "uplink_message.settings.data_rate")
    if data_rate is not None:
        lora = _object(data_rate.get("lora"), "uplink_message.settings.data_rate.lora")
        if lora is not None:
            spreading_factor = _optional_uint(
                lora.get("spreading_factor"),
                "uplink_message.settings.data_rate.lora.spreading_factor",
            )
            bandwidth = _optional_uint(
                lora.get("bandwidth"), "uplink_message.settings.data_rate.lora.bandwidth"
            )
    frequency = _optional_uint(
        settings.get("frequency"), "uplink_message.settings.frequency", UINT64_MAX
    )

    if (value := doc.get("received_at")) is not None:
        received_at: datetime | None = _time(value, "received_at")
    elif (value := up.get("received_at")) is not None:
        received_at = _time(value, "uplink_message.received_at")
    elif rx_times:
        received_at = _earliest(rx_times)
    elif (value := settings.get("time")) is not None:
        received_at = _time(value, "uplink_message.settings.time")
    else:
        received_at = None

    legacy_key = None
    if session_key_id:
        # The key before migration 0008 is the new one without its last part: one hash
        # state gives both.
        session = _dedup_hash("ttn-v3", "session", dev_eui, session_key_id, f_cnt)
        legacy_key = session.copy().digest()
        value = up.get("received_at")
        if value is not None:
            session_time: str | None = _time_part(value, "uplink_message.received_at")
        elif received_at is not None:  # what stands in for it
            session_time = _utc_text(received_at)
        else:
            session_time = None
        if session_time is not None:
            session.update(_netstring(session_time))
            dedup_key = session.digest()
        else:
            dedup_key = _body_key("ttn-v3", body)
    elif received_at is not None:
        dedup_key = _dedup_key(
            "ttn-v3", "time", dev_eui, dev_addr or "", f_cnt, received_at.isoformat()
        )
    else:
        dedup_key = _body_key("ttn-v3", body)

    return Uplink(
        dev_eui=dev_eui,
        city=city,
        source=source,
        received_at=now if received_at is None else received_at,
        f_port=f_port,
        f_cnt=f_cnt,
        payload=payload,
        dedup_key=dedup_key,
        radio=Radio(tuple(gateways), spreading_factor, bandwidth, frequency),
        dev_addr=dev_addr,
        ns_decoded=_decoded_object(up.get("decoded_payload")),
        legacy_key=legacy_key,
    )


# ---------------------------------------------------------------------------------------------
# ChirpStack v4


def _chirpstack_v4_key(
    deduplication_id: str,
    dev_eui: str,
    dev_addr: str | None,
    f_cnt: int,
    received_at: datetime | None,
    body: bytes,
) -> bytes:
    if deduplication_id:
        return _dedup_key("chirpstack-v4", "dedup", deduplication_id.lower())
    if received_at is not None:
        return _dedup_key(
            "chirpstack-v4", "time", dev_eui, dev_addr or "", f_cnt, received_at.isoformat()
        )
    return _body_key("chirpstack-v4", body)


def _parse_chirpstack_v4_json(body: bytes, source: str, city: City, now: datetime) -> Uplink:
    doc = _load_object(body)
    info = _required_object(doc.get("deviceInfo"), "deviceInfo")
    dev_eui = _hex_eui(info.get("devEui"), "deviceInfo.devEui")
    dev_addr = _hex_dev_addr(doc.get("devAddr"), "devAddr")
    # Proto3 defaults: a left-out fPort or fCnt is 0, as in the protobuf encoding.
    f_port = _uint(_or_default(doc.get("fPort"), 0), "fPort", 255)
    f_cnt = _uint(_or_default(doc.get("fCnt"), 0), "fCnt")
    payload = _base64(doc.get("data"), "data")
    deduplication_id = _string(doc.get("deduplicationId"), "deduplicationId") or ""

    gateways = []
    rx_times: list[tuple[Any, str]] = []
    for index, item in enumerate(_array(doc.get("rxInfo"), "rxInfo")):
        path = f"rxInfo[{index}]"
        entry = _entry(item, path)
        gateways.append(
            GatewayReception(
                _hex_eui(entry.get("gatewayId"), f"{path}.gatewayId").lower(),
                _number(_or_default(entry.get("rssi"), 0), f"{path}.rssi"),
                _number(_or_default(entry.get("snr"), 0.0), f"{path}.snr"),
            )
        )
        for key in ("nsTime", "gwTime", "time"):  # "time" is the v4.0 name of gwTime
            if (value := entry.get(key)) is not None:
                rx_times.append((value, f"{path}.{key}"))
                break

    spreading_factor = bandwidth = frequency = None
    tx_info = _object(doc.get("txInfo"), "txInfo")
    if tx_info is not None:
        frequency = _optional_uint(tx_info.get("frequency"), "txInfo.frequency")
        modulation = _object(tx_info.get("modulation"), "txInfo.modulation") or {}
        lora = _object(modulation.get("lora"), "txInfo.modulation.lora")
        if lora is not None:
            spreading_factor = _optional_uint(
                lora.get("spreadingFactor"), "txInfo.modulation.lora.spreadingFactor"
            )
            bandwidth = _optional_uint(lora.get("bandwidth"), "txInfo.modulation.lora.bandwidth")

    if (value := doc.get("time")) is not None:
        received_at: datetime | None = _time(value, "time")
    else:
        received_at = _earliest(rx_times)

    return Uplink(
        dev_eui=dev_eui,
        city=city,
        source=source,
        received_at=now if received_at is None else received_at,
        f_port=f_port,
        f_cnt=f_cnt,
        payload=payload,
        dedup_key=_chirpstack_v4_key(deduplication_id, dev_eui, dev_addr, f_cnt, received_at, body),
        radio=Radio(tuple(gateways), spreading_factor, bandwidth, frequency),
        dev_addr=dev_addr,
        ns_decoded=_decoded_object(doc.get("object")),
    )


def _parse_chirpstack_v4_protobuf(body: bytes, source: str, city: City, now: datetime) -> Uplink:
    event = integration_pb2.UplinkEvent()
    try:
        event.ParseFromString(body)
    except DecodeError as exc:
        raise EnvelopeError(f"not a ChirpStack v4 UplinkEvent protobuf: {exc}") from exc
    if not event.HasField("device_info"):
        raise EnvelopeError("device_info: missing")
    dev_eui = _hex_eui(event.device_info.dev_eui or None, "device_info.dev_eui")
    dev_addr = _hex_dev_addr(event.dev_addr, "dev_addr")
    if event.f_port > 255:
        raise EnvelopeError(f"f_port: {event.f_port} is out of range 0..255")

    gateways = []
    rx_times: list[tuple[Any, str]] = []
    for index, rx in enumerate(event.rx_info):
        gateways.append(
            GatewayReception(
                _hex_eui(rx.gateway_id or None, f"rx_info[{index}].gateway_id").lower(),
                float(rx.rssi),
                _float32(rx.snr),
            )
        )
        if rx.HasField("ns_time"):
            rx_times.append((rx.ns_time, f"rx_info[{index}].ns_time"))
        elif rx.HasField("gw_time"):
            rx_times.append((rx.gw_time, f"rx_info[{index}].gw_time"))

    spreading_factor = bandwidth = frequency = None
    if event.HasField("tx_info"):
        frequency = event.tx_info.frequency or None
        if event.tx_info.modulation.WhichOneof("parameters") == "lora":
            lora = event.tx_info.modulation.lora
            spreading_factor = lora.spreading_factor or None
            bandwidth = lora.bandwidth or None

    if event.HasField("time"):
        received_at: datetime | None = _timestamp(event.time, "time")
    else:
        received_at = min([_timestamp(*rx_time) for rx_time in rx_times], default=None)

    return Uplink(
        dev_eui=dev_eui,
        city=city,
        source=source,
        received_at=now if received_at is None else received_at,
        f_port=event.f_port,
        f_cnt=event.f_cnt,
        payload=event.data,
        dedup_key=_chirpstack_v4_key(
            event.deduplication_id, dev_eui, dev_addr, event.f_cnt, received_at, body
        ),
        radio=Radio(tuple(gateways), spreading_factor, bandwidth, frequency),
        dev_addr=dev_addr,
        ns_decoded=_struct_to_dict(event.object) if event.HasField("object") else None,
    )


def _timestamp(value: Any, path: str) -> datetime:
    """Convert a google.protobuf.Timestamp, truncating nanoseconds like parse_rfc3339."""
    if not 0 <= value.nanos <= 999_999_999:
        raise EnvelopeError(f"{path}: nanos {value.nanos} out of range")
    try:
        return _EPOCH + timedelta(0, value.seconds, value.nanos // 1000)
    except OverflowError as exc:
        raise EnvelopeError(f"{path}: seconds {value.seconds} out of range") from exc


def _float32(value: float) -> float:
    """Give a float32 its shortest decimal form, as ChirpStack's JSON has it (5.2, not 5.19…)."""
    if not math.isfinite(value):
        return value
    for form in (".6g", ".7g", ".8g", ".9g"):
        shortest = float(format(value, form))
        if _FLOAT32.unpack(_FLOAT32.pack(shortest))[0] == value:
            return shortest
    return value


def _struct_to_dict(value: Any) -> dict[str, Any] | None:
    """Convert a google.protobuf.Struct; None when it holds NaN or Infinity, which JSON cannot."""
    try:
        return {key: _struct_value(item) for key, item in value.fields.items()}
    except ValueError:
        return None


def _struct_value(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        if not math.isfinite(value.number_value):
            raise ValueError("not finite")
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return {key: _struct_value(item) for key, item in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_struct_value(item) for item in value.list_value.values]
    return None


# ---------------------------------------------------------------------------------------------
# ChirpStack Application Server v3


def _parse_chirpstack_v3_json(body: bytes, source: str, city: City, now: datetime) -> Uplink:
    doc = _load_object(body)
    raw_dev_eui = doc.get("devEUI")
    # The marshaler shows in devEUI: "json_v3" writes 16 hex digits, "json" base64 of 8 bytes
    # (12 characters). The other binary fields follow the same marshaler.
    hex_marshaler = type(raw_dev_eui) is str and len(raw_dev_eui) == 16
    if hex_marshaler:
        dev_eui = _hex_eui(raw_dev_eui, "devEUI")
    elif raw_dev_eui is None:
        raise EnvelopeError("devEUI: missing")
    elif type(raw_dev_eui) is not str:
        raise EnvelopeError(
            f"devEUI: expected 16 hex digits or base64 of 8 bytes, got {_describe(raw_dev_eui)}"
        )
    else:
        dev_eui = _base64_sized(raw_dev_eui, "devEUI", 8).hex().upper()
    raw_dev_addr = doc.get("devAddr")
    if raw_dev_addr is None or raw_dev_addr == "":
        dev_addr = None
    elif hex_marshaler:
        dev_addr = _hex_dev_addr(raw_dev_addr, "devAddr")
    else:
        dev_addr = _base64_sized(raw_dev_addr, "devAddr", 4).hex().upper()

    f_port_value = doc.get("fPort")
    f_port = None if f_port_value is None else _uint(f_port_value, "fPort", 255)
    f_cnt_value = doc.get("fCnt")
    f_cnt = 0 if f_cnt_value is None else _uint(f_cnt_value, "fCnt")
    payload = _base64(doc.get("data"), "data")

    gateways = []
    rx_times: list[tuple[Any, str]] = []
    uplink_ids = []
    for index, item in enumerate(_array(doc.get("rxInfo"), "rxInfo")):
        path = f"rxInfo[{index}]"
        entry = _entry(item, path)
        if hex_marshaler:
            gateway_id = _hex_eui(entry.get("gatewayID"), f"{path}.gatewayID").lower()
        else:
            gateway_id = _base64_sized(entry.get("gatewayID"), f"{path}.gatewayID", 8).hex()
        gateways.append(
            GatewayReception(
                gateway_id,
                _number(entry.get("rssi"), f"{path}.rssi"),
                _number(entry.get("loRaSNR"), f"{path}.loRaSNR"),
            )
        )
        if (value := entry.get("time")) is not None:
            rx_times.append((value, f"{path}.time"))
        if (value := entry.get("uplinkID")) is not None and value != "":
            uplink_id = _uplink_id(value, f"{path}.uplinkID", hex_marshaler)
            if uplink_id != _NIL_UUID:
                uplink_ids.append(uplink_id)

    spreading_factor = bandwidth = None
    tx_info = _object(doc.get("txInfo"), "txInfo") or {}
    frequency = _optional_uint(tx_info.get("frequency"), "txInfo.frequency")
    lora = _object(tx_info.get("loRaModulationInfo"), "txInfo.loRaModulationInfo")
    if lora is not None:
        spreading_factor = _optional_uint(
            lora.get("spreadingFactor"), "txInfo.loRaModulationInfo.spreadingFactor"
        )
        kilohertz = _optional_uint(lora.get("bandwidth"), "txInfo.loRaModulationInfo.bandwidth")
        bandwidth = None if kilohertz is None else kilohertz * 1000
    elif tx_info.get("modulation") in (None, "LORA"):
        # json_v3 has txInfo.dr only; the json marshaler also has a top-level dr.
        data_rate, path = tx_info.get("dr"), "txInfo.dr"
        if data_rate is None:
            data_rate, path = doc.get("dr"), "dr"
        if data_rate is not None:
            spreading_factor, bandwidth = _EU868_DATA_RATES.get(
                _uint(data_rate, path), (None, None)
            )

    received_at = _earliest(rx_times)
    if received_at is None and (value := doc.get("publishedAt")) is not None:
        received_at = _time(value, "publishedAt")

    if uplink_ids:
        uplink_ids.sort()
        dedup_key = _dedup_key("chirpstack-v3", "uplink", dev_eui, f_cnt, *uplink_ids)
    elif received_at is not None:
        dedup_key = _dedup_key("chirpstack-v3", "time", dev_eui, f_cnt, received_at.isoformat())
    else:
        dedup_key = _body_key("chirpstack-v3", body)

    ns_decoded = _decoded_object(doc.get("object"))
    if ns_decoded is None and type(object_json := doc.get("objectJSON")) is str and object_json:
        try:
            ns_decoded = _decoded_object(orjson.loads(object_json))
        except orjson.JSONDecodeError:
            ns_decoded = None  # the codec's output is advisory; the hub decodes the payload

    return Uplink(
        dev_eui=dev_eui,
        city=city,
        source=source,
        received_at=now if received_at is None else received_at,
        f_port=f_port,
        f_cnt=f_cnt,
        payload=payload,
        dedup_key=dedup_key,
        radio=Radio(tuple(gateways), spreading_factor, bandwidth, frequency),
        dev_addr=dev_addr,
        ns_decoded=ns_decoded,
    )


def _uplink_id(value: Any, path: str, hex_marshaler: bool) -> str:
    """Normalise an uplinkID to the canonical UUID string, whichever marshaler wrote it."""
    if hex_marshaler:
        if type(value) is str and len(value) == 36:
            try:
                return str(uuid.UUID(value))
            except ValueError:
                pass
        raise EnvelopeError(f"{path}: expected a UUID, got {_describe(value)}")
    return str(uuid.UUID(bytes=_base64_sized(value, path, 16)))


_PARSERS: dict[str, _Parser] = {
    SourceFormat.TTN_V3: _parse_ttn_v3,
    SourceFormat.CHIRPSTACK_V4_JSON: _parse_chirpstack_v4_json,
    SourceFormat.CHIRPSTACK_V4_PROTOBUF: _parse_chirpstack_v4_protobuf,
    SourceFormat.CHIRPSTACK_V3_JSON: _parse_chirpstack_v3_json,
}
