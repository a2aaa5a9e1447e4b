"""Milesight IoT sensors: EM500-CO2, AM319, VS133 and EM300-DI.

Every model uses the same frame: a sequence of channels, each a channel id byte, a
channel type byte and a value of fixed size, little-endian, sent on f_port 85. The
vendor codecs stop silently at the first channel they do not know and read zeros past
the end of the payload; these decoders refuse both. Device information channels
(id 0xff, sent after joining) are unknown to these codec versions, so they are refused too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from decoders._frame import check_not_empty, check_port, s16le, take, u16le, u32le
from decoders.catalog import DecodeError, MetricKind, MetricMapping, Profile, load_examples
from decoders.jsnum import js_number

MILESIGHT_PORT = 85

Fields = dict[str, Any]
Channel = tuple[int, Callable[[Fields, bytes], None]]  # value size, what it sets


def _field(key: str, size: int, read: Callable[[bytes], Any]) -> Channel:
    def apply(obj: Fields, value: bytes) -> None:
        obj[key] = read(value)

    return size, apply


def _decode_channels(
    payload: bytes, channels: Mapping[tuple[int, int], Channel], model: str
) -> dict[str, Any]:
    check_not_empty(payload)
    obj: Fields = {}
    at = 0
    while at < len(payload):
        channel_id, channel_type = take(payload, at, 2, f"{model} channel header")
        channel = channels.get((channel_id, channel_type))
        if channel is None:
            raise DecodeError(
                f"unknown {model} channel 0x{channel_id:02x} type 0x{channel_type:02x} at byte {at}"
            )
        size, apply = channel
        apply(obj, take(payload, at + 2, size, f"{model} channel 0x{channel_id:02x}"))
        at += 2 + size
    return obj


def _u8(value: bytes) -> int:
    return value[0]


def _tenths_signed(value: bytes) -> int | float:
    return js_number(s16le(value) / 10)


def _tenths(value: bytes) -> int | float:
    return js_number(u16le(value) / 10)


def _hundredths(value: bytes) -> int | float:
    return js_number(u16le(value) / 100)


def _half(value: bytes) -> int | float:
    return js_number(value[0] / 2)  # humidity in 0.5 %RH steps


_BATTERY = _field("battery", 1, _u8)  # %
_TEMPERATURE = _field("temperature", 2, _tenths_signed)  # 0.1 °C
_HUMIDITY = _field("humidity", 1, _half)

_EM500_CO2_CHANNELS: dict[tuple[int, int], Channel] = {
    (0x01, 0x75): _BATTERY,
    (0x03, 0x67): _TEMPERATURE,
    (0x04, 0x68): _HUMIDITY,
    (0x05, 0x7D): _field("co2", 2, s16le),  # ppm; this codec reads it signed
    (0x06, 0x73): _field("pressure", 2, _tenths_signed),  # 0.1 hPa, also read signed
}


def decode_em500_co2(f_port: int, payload: bytes) -> dict[str, Any]:
    """Decode an EM500-CO2 uplink into em500-co2.js's data object (commit 8566e9a0)."""
    # That codec version has only the legacy Decoder(bytes, port) entry point; its
    # return value is the data object.
    check_port(f_port, {MILESIGHT_PORT})
    return _decode_channels(payload, _EM500_CO2_CHANNELS, "EM500-CO2")


_AM319_CHANNELS: dict[tuple[int, int], Channel] = {
    (0x01, 0x75): _BATTERY,
    (0x03, 0x67): _TEMPERATURE,
    (0x04, 0x68): _HUMIDITY,
    (0x05, 0x00): _field("activity", 1, lambda v: "trigger" if v[0] == 1 else "idle"),  # PIR
    (0x06, 0xCB): _field("light_level", 1, _u8),  # 0..5, a level, not lux
    (0x07, 0x7D): _field("co2", 2, u16le),  # ppm
    # TVOC as Milesight's IAQ index times 100 (later codecs divide it by 100), not ppb.
    (0x08, 0x7D): _field("tvoc", 2, u16le),
    (0x09, 0x73): _field("pressure", 2, _tenths),  # 0.1 hPa
    (0x0A, 0x7D): _field("hcho", 2, _hundredths),  # 0.01 mg/m3
    (0x0B, 0x7D): _field("pm2.5", 2, u16le),  # µg/m3; the key has a dot
    (0x0C, 0x7D): _field("pm10", 2, u16le),  # µg/m3
    (0x0D, 0x7D): _field("o3", 2, _hundredths),  # 0.01 ppm
    (0x0E, 0x01): _field("beep", 1, lambda v: "yes" if v[0] == 1 else "no"),
}


def decode_am319(f_port: int, payload: bytes) -> dict[str, Any]:
    """Decode an AM319 (or AM307) uplink into am319.js's data object (commit a74c9129)."""
    check_port(f_port, {MILESIGHT_PORT})
    return _decode_channels(payload, _AM319_CHANNELS, "AM319")


def _vs133_line(key: str, kind: str) -> Callable[[Fields, bytes], None]:
    # Nested per line ("line_1" .. "line_4"), created when the line first appears.
    def apply(obj: Fields, value: bytes) -> None:
        line = obj.setdefault(key, {})
        if kind == "period":
            line["period_in"] = u16le(value, 0)
            line["period_out"] = u16le(value, 2)
        else:
            line[kind] = u32le(value)

    return apply


# Line n (1..4) uses channel ids 3n (total in), 3n+1 (total out) and 3n+2 (counts of
# the last reporting period).
_VS133_CHANNELS: dict[tuple[int, int], Channel] = {
    (3 * line + offset, channel_type): (4, _vs133_line(f"line_{line}", kind))
    for line in range(1, 5)
    for offset, channel_type, kind in (
        (0, 0xD2, "total_in"),
        (1, 0xD2, "total_out"),
        (2, 0xCC, "period"),
    )
}


def decode_vs133(f_port: int, payload: bytes) -> dict[str, Any]:
    """Decode a VS133 uplink into vs133.js's data object (commit 62c8acdd)."""
    check_port(f_port, {MILESIGHT_PORT})
    return _decode_channels(payload, _VS133_CHANNELS, "VS133")


def _em300_history(obj: Fields, value: bytes) -> None:
    # timestamp (4), temperature (2), humidity (1), mode (1), gpio (1), pulse count (4)
    mode = value[7]
    if mode not in (1, 2):
        raise DecodeError(f"EM300-DI history record has unknown mode {mode}")
    point: dict[str, Any] = {
        "timestamp": u32le(value, 0),
        "temperature": js_number(s16le(value, 4) / 10),
        "humidity": js_number(value[6] / 2),
    }
    if mode == 1:
        point["gpio"] = value[8]
    else:
        point["pulse"] = u32le(value, 9)
    obj.setdefault("history", []).append(point)


_EM300_DI_CHANNELS: dict[tuple[int, int], Channel] = {
    (0x01, 0x75): _BATTERY,
    (0x03, 0x67): _TEMPERATURE,
    (0x04, 0x68): _HUMIDITY,
    (0x05, 0x00): _field("gpio", 1, _u8),  # digital input level, in GPIO mode
    (0x05, 0xC8): _field("pulse", 4, u32le),  # pulse counter, in counter mode
    # The codec accepts a history record from 12 bytes on but reads 13.
    (0x20, 0xCE): (13, _em300_history),
}


def decode_em300_di(f_port: int, payload: bytes) -> dict[str, Any]:
    """Decode an EM300-DI uplink into em300-di.js's data object (commit 27d8ce26)."""
    check_port(f_port, {MILESIGHT_PORT})
    return _decode_channels(payload, _EM300_DI_CHANNELS, "EM300-DI")


EM500_CO2 = Profile(
    id="milesight-iot/em500-co2",
    vendor="milesight-iot",
    model="em500-co2",
    description="Milesight EM500-CO2: CO2, temperature, humidity and barometric pressure",
    decode=decode_em500_co2,
    mappings=(
        MetricMapping(("temperature",), "temperature", MetricKind.GAUGE, decimals=1),
        MetricMapping(("humidity",), "relative_humidity", MetricKind.GAUGE, decimals=1),
        MetricMapping(("co2",), "co2", MetricKind.GAUGE, decimals=0),
        MetricMapping(("pressure",), "barometric_pressure", MetricKind.GAUGE, decimals=1),
        MetricMapping(("battery",), "battery", MetricKind.GAUGE, decimals=0),
    ),
    reporting_interval_s=600,
    examples=load_examples("milesight-iot", "em500-co2"),
    version="1",
)

AM319 = Profile(
    id="milesight-iot/am319",
    vendor="milesight-iot",
    model="am319",
    description="Milesight AM319: indoor air quality (CO2, PM2.5, PM10, HCHO) and climate",
    decode=decode_am319,
    mappings=(
        # tvoc is left out: an IAQ index, not a concentration. activity and beep are text.
        MetricMapping(("temperature",), "temperature", MetricKind.GAUGE, decimals=1),
        MetricMapping(("humidity",), "relative_humidity", MetricKind.GAUGE, decimals=1),
        MetricMapping(("co2",), "co2", MetricKind.GAUGE, decimals=0),
        MetricMapping(("pressure",), "barometric_pressure", MetricKind.GAUGE, decimals=1),
        MetricMapping(("hcho",), "hcho", MetricKind.GAUGE, decimals=2),
        MetricMapping(("pm2.5",), "pm2_5", MetricKind.GAUGE, decimals=0),
        MetricMapping(("pm10",), "pm10", MetricKind.GAUGE, decimals=0),
        MetricMapping(("battery",), "battery", MetricKind.GAUGE, decimals=0),  # AM307 only
    ),
    reporting_interval_s=600,
    examples=load_examples("milesight-iot", "am319"),
    version="1",
)

VS133 = Profile(
    id="milesight-iot/vs133",
    vendor="milesight-iot",
    model="vs133",
    description="Milesight VS133: people counter, running totals per counting line",
    decode=decode_vs133,
    mappings=(
        # Line 1 only: one metric per profile, and a door needs one line. The period
        # counts follow from the totals.
        # Totals are u32 fields: they wrap at 2**32.
        MetricMapping(("line_1", "total_in"), "people_in", MetricKind.COUNTER, wrap=32, decimals=0),
        MetricMapping(
            ("line_1", "total_out"), "people_out", MetricKind.COUNTER, wrap=32, decimals=0
        ),
    ),
    reporting_interval_s=600,
    examples=load_examples("milesight-iot", "vs133"),
    version="1",
)

EM300_DI = Profile(
    id="milesight-iot/em300-di",
    vendor="milesight-iot",
    model="em300-di",
    description="Milesight EM300-DI: pulse counter for water, gas or energy meters",
    decode=decode_em300_di,
    mappings=(
        MetricMapping(
            ("pulse",), "pulse_count", MetricKind.COUNTER, wrap=32, decimals=0
        ),  # u32 field
        MetricMapping(("temperature",), "temperature", MetricKind.GAUGE, decimals=1),
        MetricMapping(("humidity",), "relative_humidity", MetricKind.GAUGE, decimals=1),
        MetricMapping(("battery",), "battery", MetricKind.GAUGE, decimals=0),
    ),
    reporting_interval_s=600,
    examples=load_examples("milesight-iot", "em300-di"),
    version="1",
)
