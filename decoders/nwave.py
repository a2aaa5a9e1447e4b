"""Nwave sensors: NPS405 parking sensor (SM and FM variants share the codec).

Reproduces nps405.js (commit 62c8acdd). The recorded codec reads occupancy from bit 0
of the first byte and the compressed duration of the previous state from bits 1-7; an
older version (0a254aaa) had them the other way round.
"""

from __future__ import annotations

from typing import Any

from decoders._frame import check_length, check_not_empty, check_port
from decoders.catalog import MetricKind, MetricMapping, Profile, load_examples
from decoders.jsnum import int32, js_number

_PARKING_STATUS = 1
_HEARTBEAT = 2
_STARTUP = 3
_DEBUG = 6
_USER_REGISTRATION = 10

_RESET_CAUSES = {
    0: "rejoining_lorawan_network",
    1: "watchdog",
    2: "power_on",
    3: "user_request",
    6: "brownout",
    7: "other",
}


def _previous_state(first_byte: int) -> dict[str, Any]:
    # Minutes in the previous state, compressed into 7 bits: exact below 90, then
    # 5-minute steps up to 235, then hours up to 600; 127 means longer than that.
    compressed = (first_byte >> 1) & 0x7F
    if compressed < 90:
        duration, error, overflow = compressed, 0, False
    elif compressed < 120:
        duration, error, overflow = 90 + (compressed - 90) * 5, 4, False
    elif compressed < 127:
        duration, error, overflow = 240 + (compressed - 120) * 60, 59, False
    else:
        duration, error, overflow = 660, None, True
    return {
        "previous_state_duration": duration,
        "previous_state_duration_error": error,
        "previous_state_duration_overflow": overflow,
    }


def _heartbeat(b: bytes) -> dict[str, Any]:
    temperature = js_number((b[2] - 256 if b[2] > 127 else b[2]) / 2 + 10)  # °C
    battery_mv = 2500 + b[1] * 4
    critical, low = (2900, 3000) if temperature >= -5 else (2800, 2900)
    if battery_mv >= low:
        health = "normal"
    elif battery_mv >= critical:
        health = "low"
    else:
        health = "critical"
    return {
        "type": "heartbeat",
        "occupied": (b[0] & 0x1) == 0x1,
        # The codec masks with 0x7F, which includes the occupancy bit: an occupied bay
        # reports health status 1. Kept as the codec has it.
        "hw_health_status": b[0] & 0x7F,
        "temperature": temperature,
        "battery_voltage": js_number(battery_mv / 1000),
        "battery_health": health,
    }


def _startup(b: bytes) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "startup", "firmware_version": f"{b[0]}.{b[1]}.{b[2]}"}
    if b[3] in _RESET_CAUSES:  # the codec yields undefined (no key) for other causes
        data["reset_cause"] = _RESET_CAUSES[b[3]]
    data["occupied"] = (b[4] & 0x1) == 0x1
    return data


def _user_registration(b: bytes) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "user_registration"}
    if b[0] & 0x1:
        data["occupied"] = True
        data.update(_previous_state(b[0]))
    else:
        data["occupied"] = None
        data["previous_state_duration"] = None
        data["previous_state_duration_error"] = None
        data["previous_state_duration_overflow"] = None
    # The codec builds the id with `<<` (signed 32 bits) and prints it in hex: an id
    # from 0x80000000 on comes out as "-" and the magnitude. Kept as the codec has it.
    tag = int32(int.from_bytes(b[1:5], "big"))
    data["tag_id"] = ("-" if tag < 0 else "") + format(abs(tag), "X")
    return data


def decode_nps405(f_port: int, payload: bytes) -> dict[str, Any]:
    """Decode an NPS405 uplink into nps405.js's data object."""
    check_port(f_port, {_PARKING_STATUS, _HEARTBEAT, _STARTUP, _DEBUG, _USER_REGISTRATION})
    if f_port == _PARKING_STATUS:
        check_length(payload, 1, frame="A parking status frame")
        return {
            "type": "parking_status",
            "occupied": (payload[0] & 0x1) == 0x1,
            **_previous_state(payload[0]),
        }
    if f_port == _HEARTBEAT:
        # Older firmware sends 3 bytes, newer 6; the codec reads the first 3.
        check_length(payload, 3, 4, 5, 6, frame="A heartbeat frame")
        return _heartbeat(payload)
    if f_port == _STARTUP:
        check_length(payload, 5, frame="A startup frame")
        return _startup(payload)
    if f_port == _DEBUG:
        check_not_empty(payload)
        return {"type": "debug", "bytes": list(payload)}
    # Newer firmware appends the tag's battery voltage; this codec version ignores it.
    check_length(payload, 5, 6, frame="A user registration frame")
    return _user_registration(payload)


NPS405 = Profile(
    id="nwave/nps405",
    vendor="nwave",
    model="nps405",
    description="Nwave NPS405: in-ground parking bay occupancy sensor",
    decode=decode_nps405,
    mappings=(
        MetricMapping(("occupied",), "occupancy", MetricKind.STATE, decimals=0),
        MetricMapping(("temperature",), "temperature", MetricKind.GAUGE, decimals=1),
        MetricMapping(("battery_voltage",), "battery_voltage", MetricKind.GAUGE, decimals=3),
    ),
    # Reports each change of state at once; the heartbeat comes every 24 hours.
    reporting_interval_s=86_400,
    examples=load_examples("nwave", "nps405"),
    version="1",
)
