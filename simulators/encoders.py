"""Encoders: the inverse of the catalog's decoders, for simulated devices.

An encoder turns decoded field values into the (f_port, payload) the device would send.
Values are keyed by their path into the decoded object (the paths of the profile's metric
mappings, e.g. ("temperature",) or ("line_1", "total_in")) and are in the vendor's units,
not the canonical ones. `quantize` rounds and clamps them to what the payload carries, in
the decoder's own arithmetic, so that the profile's decoder gives the quantized values
back exactly: decode(*encode(quantize(x)))[path] == quantize(x)[path] for every field.
Fields the payload needs but the simulator does not supply (battery, status bits, other
channels) are filled with plausible fixed defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from decoders.jsnum import JsNumber, js_number, to_fixed

FieldPath = tuple[str, ...]
RawValues = Mapping[FieldPath, int]


class Quantity(Protocol):
    """How one decoded field travels in the payload: as an integer, and back."""

    def raw(self, value: float) -> int: ...

    def value(self, raw: int) -> Any: ...


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"cannot encode {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Steps:
    """A reading carried as an integer count of 1/divisor units, within [low, high]."""

    divisor: int  # the decoder computes raw / divisor
    low: int
    high: int
    fixed: int | None = None  # the decoder's parseFloat(x.toFixed(fixed)), if it has one

    def raw(self, value: float) -> int:
        """Round to the nearest step and clamp to the representable range."""
        return min(max(round(_finite(value) * self.divisor), self.low), self.high)

    def value(self, raw: int) -> JsNumber:
        """Return what the decoder makes of `raw`, in its own arithmetic."""
        value = raw / self.divisor
        return to_fixed(value, self.fixed) if self.fixed is not None else js_number(value)


@dataclass(frozen=True, slots=True)
class Flag:
    """A yes/no state carried as one bit; the decoder yields a boolean."""

    def raw(self, value: float) -> int:
        """Return 1 for values of one half and above, else 0."""
        return 1 if _finite(value) >= 0.5 else 0

    def value(self, raw: int) -> bool:
        """Return the decoder's boolean for the bit."""
        return raw == 1


@dataclass(frozen=True, slots=True)
class Encoder:
    """The inverse of one profile's decoder, for the fields a simulator drives."""

    profile_id: str
    quantities: Mapping[FieldPath, Quantity]
    pack: Callable[[RawValues], tuple[int, bytes]]  # raw field values -> (f_port, payload)

    @property
    def fields(self) -> tuple[FieldPath, ...]:
        """Return the paths of the decoded fields the simulator must supply."""
        return tuple(self.quantities)

    def quantize(self, values: Mapping[FieldPath, float]) -> dict[FieldPath, Any]:
        """Round and clamp values to what the payload carries, as the decoder returns them."""
        return {path: q.value(q.raw(self._get(values, path))) for path, q in self._items()}

    def encode(self, values: Mapping[FieldPath, Any]) -> tuple[int, bytes]:
        """Build the (f_port, payload) that carries these values."""
        return self.pack({path: q.raw(self._get(values, path)) for path, q in self._items()})

    def _items(self) -> list[tuple[FieldPath, Quantity]]:
        return list(self.quantities.items())

    def _get(self, values: Mapping[FieldPath, Any], path: FieldPath) -> float:
        if path not in values:
            raise KeyError(f"{self.profile_id}: no value for field {'/'.join(path)!r}")
        return float(values[path])


def _s16be(value: int) -> bytes:
    return value.to_bytes(2, "big", signed=True)


def _u16be(value: int) -> bytes:
    return value.to_bytes(2, "big")


def _s16le(value: int) -> bytes:
    return value.to_bytes(2, "little", signed=True)


def _u16le(value: int) -> bytes:
    return value.to_bytes(2, "little")


def _u32le(value: int) -> bytes:
    return value.to_bytes(4, "little")


# Ranges shared by several models. Relative humidity stops at 100 %, whatever the field
# could hold; the rest is the payload's own range unless a comment says otherwise.
_S16 = (-0x8000, 0x7FFF)
_U16 = (0, 0xFFFF)
_U32 = (0, 0xFFFF_FFFF)
_HALF_PERCENT = Steps(2, 0, 200)  # Milesight humidity, 0.5 %RH steps

# Elsys ERS CO2 -------------------------------------------------------------------------

_ELSYS_PORT = 5  # the Elsys default
_ELSYS_VDD_MV = 3600  # battery, fresh lithium cell


def _pack_ers_co2(raw: RawValues) -> tuple[int, bytes]:
    return _ELSYS_PORT, b"".join(
        (
            b"\x01" + _s16be(raw[("temperature",)]),
            b"\x02" + bytes([raw[("humidity",)]]),
            b"\x04" + _u16be(raw[("light",)]),
            b"\x05" + bytes([raw[("motion",)]]),
            b"\x06" + _u16be(raw[("co2",)]),
            b"\x07" + _u16be(_ELSYS_VDD_MV),
        )
    )


ERS_CO2 = Encoder(
    "elsys/ers-co2",
    {
        ("temperature",): Steps(10, *_S16),  # °C
        ("humidity",): Steps(1, 0, 100),  # %RH
        ("light",): Steps(1, *_U16),  # lux
        ("motion",): Steps(1, 0, 0xFF),  # PIR motions since the last report
        ("co2",): Steps(1, *_U16),  # ppm
    },
    _pack_ers_co2,
)

# Dragino LHT65 -------------------------------------------------------------------------

_LHT65_PORT = 2
_LHT65_BATTERY_MV = 3000
_LHT65_EXT_TEMPERATURE = 0x01  # external DS18B20 probe on the cable


def _lht65_battery_status(millivolts: int) -> int:
    # Dragino's battery status bits: 3 good (>= 2.65 V), 2 ok, 1 low, 0 ultra low.
    for status, threshold in ((3, 2650), (2, 2550), (1, 2500)):
        if millivolts >= threshold:
            return status
    return 0


def _pack_lht65(raw: RawValues) -> tuple[int, bytes]:
    battery = (_lht65_battery_status(_LHT65_BATTERY_MV) << 14) | _LHT65_BATTERY_MV
    return _LHT65_PORT, b"".join(
        (
            _u16be(battery),
            _s16be(raw[("TempC_SHT",)]),
            _u16be(raw[("Hum_SHT",)]),  # 12 bits used; the top nibble stays 0
            bytes([_LHT65_EXT_TEMPERATURE]),
            _s16be(raw[("TempC_DS",)]),
            b"\x7f\xff",  # unused by the temperature probe
        )
    )


LHT65 = Encoder(
    "dragino/lht65",
    {
        ("TempC_SHT",): Steps(100, *_S16, fixed=2),  # °C
        ("Hum_SHT",): Steps(10, 0, 1000, fixed=1),  # %RH
        # The DS18B20's range, -55..125 °C: 0x7FFF (327.67) would mean "no probe".
        ("TempC_DS",): Steps(100, -5500, 12500, fixed=2),
    },
    _pack_lht65,
)

# Milesight (f_port 85, channel id + type + little-endian value) ------------------------

_MILESIGHT_PORT = 85
_MILESIGHT_BATTERY_PERCENT = 95


def _pack_em500_co2(raw: RawValues) -> tuple[int, bytes]:
    return _MILESIGHT_PORT, b"".join(
        (
            b"\x01\x75" + bytes([_MILESIGHT_BATTERY_PERCENT]),
            b"\x03\x67" + _s16le(raw[("temperature",)]),
            b"\x04\x68" + bytes([raw[("humidity",)]]),
            b"\x05\x7d" + _s16le(raw[("co2",)]),
            b"\x06\x73" + _s16le(raw[("pressure",)]),
        )
    )


EM500_CO2 = Encoder(
    "milesight-iot/em500-co2",
    {
        ("temperature",): Steps(10, *_S16),  # °C
        ("humidity",): _HALF_PERCENT,
        ("co2",): Steps(1, 0, 0x7FFF),  # ppm; the codec reads it signed
        ("pressure",): Steps(10, 0, 0x7FFF),  # hPa; also read signed
    },
    _pack_em500_co2,
)

_AM319_LIGHT_LEVEL = 2  # 0..5
_AM319_TVOC = 100  # IAQ index 1.00, times 100


def _pack_am319(raw: RawValues) -> tuple[int, bytes]:
    return _MILESIGHT_PORT, b"".join(
        (
            b"\x03\x67" + _s16le(raw[("temperature",)]),
            b"\x04\x68" + bytes([raw[("humidity",)]]),
            b"\x05\x00\x00",  # PIR idle
            b"\x06\xcb" + bytes([_AM319_LIGHT_LEVEL]),
            b"\x07\x7d" + _u16le(raw[("co2",)]),
            b"\x08\x7d" + _u16le(_AM319_TVOC),
            b"\x09\x73" + _u16le(raw[("pressure",)]),
            b"\x0a\x7d" + _u16le(raw[("hcho",)]),
            b"\x0b\x7d" + _u16le(raw[("pm2.5",)]),
            b"\x0c\x7d" + _u16le(raw[("pm10",)]),
        )
    )


AM319 = Encoder(
    "milesight-iot/am319",
    {
        ("temperature",): Steps(10, *_S16),  # °C
        ("humidity",): _HALF_PERCENT,
        ("co2",): Steps(1, *_U16),  # ppm
        ("pressure",): Steps(10, *_U16),  # hPa
        ("hcho",): Steps(100, *_U16),  # mg/m3
        ("pm2.5",): Steps(1, *_U16),  # µg/m3; one key with a dot in it
        ("pm10",): Steps(1, *_U16),  # µg/m3
    },
    _pack_am319,
)


def _pack_vs133(raw: RawValues) -> tuple[int, bytes]:
    return _MILESIGHT_PORT, b"".join(
        (
            b"\x03\xd2" + _u32le(raw[("line_1", "total_in")]),
            b"\x04\xd2" + _u32le(raw[("line_1", "total_out")]),
            b"\x05\xcc" + _u16le(0) + _u16le(0),  # counts of the last period: not simulated
        )
    )


VS133 = Encoder(
    "milesight-iot/vs133",
    {
        ("line_1", "total_in"): Steps(1, *_U32),  # people, running total
        ("line_1", "total_out"): Steps(1, *_U32),
    },
    _pack_vs133,
)


def _pack_em300_di(raw: RawValues) -> tuple[int, bytes]:
    return _MILESIGHT_PORT, b"".join(
        (
            b"\x01\x75" + bytes([_MILESIGHT_BATTERY_PERCENT]),
            b"\x03\x67" + _s16le(raw[("temperature",)]),
            b"\x04\x68" + bytes([raw[("humidity",)]]),
            b"\x05\xc8" + _u32le(raw[("pulse",)]),
        )
    )


EM300_DI = Encoder(
    "milesight-iot/em300-di",
    {
        ("temperature",): Steps(10, *_S16),  # °C
        ("humidity",): _HALF_PERCENT,
        ("pulse",): Steps(1, *_U32),  # pulses, running total
    },
    _pack_em300_di,
)

# Nwave NPS405 ----------------------------------------------------------------------------

_NPS405_STATUS_PORT = 1
_NPS405_PREVIOUS_STATE_MINUTES = 30  # below 90 the compressed duration is exact


def _pack_nps405(raw: RawValues) -> tuple[int, bytes]:
    # Parking status frame: bit 0 occupied, bits 1-7 the previous state's duration.
    return _NPS405_STATUS_PORT, bytes([(_NPS405_PREVIOUS_STATE_MINUTES << 1) | raw[("occupied",)]])


NPS405 = Encoder("nwave/nps405", {("occupied",): Flag()}, _pack_nps405)

# Dragino LDDS75 --------------------------------------------------------------------------

_LDDS75_PORT = 2
_LDDS75_BATTERY_MV = 3300  # above 20, so the codec reports it rather than "Invalid Reading"


def _pack_ldds75(raw: RawValues) -> tuple[int, bytes]:
    # battery mV (2), distance mm (2), interrupt flag (1). The codec swaps the readings:
    # the distance comes back as `value` (and the battery as `distance`).
    return _LDDS75_PORT, _u16be(_LDDS75_BATTERY_MV) + _u16be(raw[("value",)]) + b"\x00"


LDDS75 = Encoder("dragino/ldds75", {("value",): Steps(1, *_U16)}, _pack_ldds75)  # mm


# datahub example thermometer (JavaScript codec, deploy/codecs/datahub) ---------------------

_EXAMPLE_THERMOMETER_PORT = 1  # the codec refuses any other port


def _pack_example_thermometer(raw: RawValues) -> tuple[int, bytes]:
    # Big-endian: temperature int16 (0.1 °C), humidity uint8 (0.5 %RH), battery uint16 (mV).
    return _EXAMPLE_THERMOMETER_PORT, b"".join(
        (
            _s16be(raw[("temperature",)]),
            bytes([raw[("humidity",)]]),
            _u16be(raw[("battery",)]),
        )
    )


# A profile of the codec directory, not of the built-in catalog: the simulator has to
# know it only because the demo ships the codec; the ingest loads it at run time.
EXAMPLE_THERMOMETER = Encoder(
    "datahub/example-thermometer",
    {
        ("temperature",): Steps(10, *_S16),  # °C
        ("humidity",): Steps(2, 0, 200),  # %RH in 0.5 steps; the byte could hold 127.5
        ("battery",): Steps(1000, *_U16),  # V, carried in mV
    },
    _pack_example_thermometer,
)


ENCODERS: dict[str, Encoder] = {
    encoder.profile_id: encoder
    for encoder in (
        ERS_CO2,
        LHT65,
        EM500_CO2,
        AM319,
        NPS405,
        LDDS75,
        VS133,
        EM300_DI,
        EXAMPLE_THERMOMETER,
    )
}
