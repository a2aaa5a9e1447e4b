"""Elsys sensors (ERS family): one TLV codec shared by every model.

Reproduces elsys.js (lorawan-devices commit f70c17a9): a payload is a sequence of
type bytes, each followed by a value of fixed size, big-endian. The vendor codec stops
silently at the first unknown type and reads zeros past the end of the payload; this
decoder refuses both, so a frame decodes completely or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from decoders._frame import check_not_empty, check_port, s8, s16be, take, u16be
from decoders.catalog import DecodeError, MetricKind, MetricMapping, Profile, load_examples
from decoders.jsnum import int32, js_number

Fields = dict[str, Any]


def _i32(value: bytes) -> int:
    # The codec assembles 4 bytes with `<<` and `|`, which JavaScript evaluates in
    # signed 32 bits: a counter above 2**31 - 1 comes out negative, and so does ours.
    return int32(int.from_bytes(value, "big"))


def _u24(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _external_temperature2(obj: Fields, value: bytes) -> None:
    # A second probe reading turns the field into a list, as the codec does.
    temperature = js_number(s16be(value) / 10)
    existing = obj.get("externalTemperature2")
    if isinstance(existing, int | float):
        existing = obj["externalTemperature2"] = [existing]
    if isinstance(existing, list):
        existing.append(temperature)
    else:
        obj["externalTemperature2"] = temperature


def _set(**readers: Callable[[bytes], Any]) -> Callable[[Fields, bytes], None]:
    def apply(obj: Fields, value: bytes) -> None:
        for key, read in readers.items():
            obj[key] = read(value)

    return apply


def _grideye(obj: Fields, value: bytes) -> None:
    reference = value[0]
    obj["grideye"] = [js_number(reference + (pixel / 10.0)) for pixel in value[1:]]


def _tenths(value: bytes) -> int | float:
    return js_number(s16be(value) / 10)


# type byte -> (value size in bytes, what it sets)
_TYPES: dict[int, tuple[int, Callable[[Fields, bytes], None]]] = {
    0x01: (2, _set(temperature=_tenths)),  # 0.1 °C, signed
    0x02: (1, _set(humidity=lambda v: v[0])),  # % RH
    0x03: (3, _set(x=lambda v: s8(v[0]), y=lambda v: s8(v[1]), z=lambda v: s8(v[2]))),
    0x04: (2, _set(light=u16be)),  # lux
    0x05: (1, _set(motion=lambda v: v[0])),  # PIR motions since the last report
    0x06: (2, _set(co2=u16be)),  # ppm
    0x07: (2, _set(vdd=u16be)),  # battery, mV
    0x08: (2, _set(analog1=u16be)),  # mV
    0x09: (6, _set(lat=lambda v: _u24(v[:3]), long=lambda v: _u24(v[3:]))),  # raw, unsigned
    0x0A: (2, _set(pulse1=u16be)),  # pulses since the last report
    0x0B: (4, _set(pulseAbs=_i32)),
    0x0C: (2, _set(externalTemperature=_tenths)),
    0x0D: (1, _set(digital=lambda v: v[0])),
    0x0E: (2, _set(distance=u16be)),  # mm
    0x0F: (1, _set(accMotion=lambda v: v[0])),
    0x10: (
        4,
        _set(
            irInternalTemperature=lambda v: js_number(s16be(v) / 10),
            irExternalTemperature=lambda v: js_number(s16be(v, 2) / 10),
        ),
    ),
    0x11: (1, _set(occupancy=lambda v: v[0])),  # 0 free, 1 pending, 2 occupied
    0x12: (1, _set(waterleak=lambda v: v[0])),
    0x13: (65, _grideye),  # reference °C, then 64 pixels in 0.1 °C above it
    0x14: (4, _set(pressure=lambda v: js_number(_i32(v) / 1000))),  # hPa
    0x15: (2, _set(soundPeak=lambda v: v[0], soundAvg=lambda v: v[1])),  # dB
    0x16: (2, _set(pulse2=u16be)),
    0x17: (4, _set(pulseAbs2=_i32)),
    0x18: (2, _set(analog2=u16be)),
    0x19: (2, _external_temperature2),
    0x1A: (1, _set(digital2=lambda v: v[0])),
    0x1B: (4, _set(analogUv=_i32)),  # µV, signed
    0x1C: (2, _set(tvoc=u16be)),  # ppb
}


def decode_elsys(f_port: int, payload: bytes) -> dict[str, Any]:
    """Decode an Elsys TLV payload into elsys.js's data object."""
    check_port(f_port)  # the codec ignores the port (the devices default to 5)
    check_not_empty(payload)
    obj: Fields = {}
    at = 0
    while at < len(payload):
        type_byte = payload[at]
        if type_byte not in _TYPES:
            raise DecodeError(f"unknown Elsys data type 0x{type_byte:02x} at byte {at}")
        size, apply = _TYPES[type_byte]
        apply(obj, take(payload, at + 1, size, f"Elsys type 0x{type_byte:02x}"))
        at += 1 + size
    return obj


ERS_CO2 = Profile(
    id="elsys/ers-co2",
    vendor="elsys",
    model="ers-co2",
    description="Elsys ERS CO2: indoor temperature, humidity, light, PIR motion and CO2",
    decode=decode_elsys,
    mappings=(
        MetricMapping(("temperature",), "temperature", MetricKind.GAUGE, decimals=1),
        MetricMapping(("humidity",), "relative_humidity", MetricKind.GAUGE, decimals=0),
        MetricMapping(("light",), "illuminance", MetricKind.GAUGE, decimals=0),
        MetricMapping(("motion",), "motion_count", MetricKind.GAUGE, decimals=0),
        MetricMapping(("co2",), "co2", MetricKind.GAUGE, decimals=0),
        MetricMapping(("vdd",), "battery_voltage", MetricKind.GAUGE, scale=0.001, decimals=3),
    ),
    reporting_interval_s=600,
    examples=load_examples("elsys", "ers-co2"),
    version="1",
)
