"""Decentlab sensors: DL-PM, DL-SHT35 and DL-IAM (protocol version 2).

A frame is: protocol version (1 byte, 2), device id (2), a flags word (2) whose bits
select which sensor blocks follow, then each selected block as 16-bit big-endian words.
Every value is an object {displayName, value, unit?}. The conversions keep the codec's
order of operations, so floats match bit for bit (100 * h / 65535, not h / 65535 * 100).
The codec ignores flag bits beyond its sensors and reads zeros past the end; these
decoders refuse unknown flags, short frames and trailing bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from decoders._frame import check_port, take, u16be
from decoders.catalog import DecodeError, MetricKind, MetricMapping, Profile, load_examples
from decoders.jsnum import js_number

PROTOCOL_VERSION = 2
_HEADER = 5


@dataclass(frozen=True, slots=True)
class _Value:
    name: str
    display_name: str
    convert: Callable[[Sequence[int]], float]
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class _Sensor:
    words: int
    values: tuple[_Value, ...]


_BATTERY = _Sensor(1, (_Value("battery_voltage", "Battery voltage", lambda x: x[0] / 1000, "V"),))
_PRESSURE = _Sensor(
    1, (_Value("barometric_pressure", "Barometric pressure", lambda x: x[0] * 2, "Pa"),)
)
_SHT = _Sensor(
    2,
    (
        _Value("air_temperature", "Air temperature", lambda x: 175 * x[0] / 65535 - 45, "°C"),
        _Value("air_humidity", "Air humidity", lambda x: 100 * x[1] / 65535, "%"),
    ),
)


def _pm(index: int, size: str, kind: str) -> _Value:
    # Mass concentrations carry a unit; number concentrations have none in this version.
    unit = "µg⋅m⁻³" if kind == "mass" else None
    return _Value(
        f"pm{size.replace('.', '_')}_{kind}_concentration",
        f"PM{size} {kind} concentration",
        lambda x: x[index] / 10,
        unit,
    )


_DL_PM_SENSORS = (
    _BATTERY,
    _Sensor(
        10,
        (
            _pm(0, "1.0", "mass"),
            _pm(1, "2.5", "mass"),
            _pm(2, "4", "mass"),
            _pm(3, "10", "mass"),
            _Value("typical_particle_size", "Typical particle size", lambda x: x[4], "nm"),
            _pm(5, "0.5", "number"),
            _pm(6, "1.0", "number"),
            _pm(7, "2.5", "number"),
            _pm(8, "4", "number"),
            _pm(9, "10", "number"),
        ),
    ),
    _Sensor(
        2,
        (
            # The SHT of the PM sensor module uses a different conversion.
            _Value(
                "air_temperature", "Air temperature", lambda x: 175.72 * x[0] / 65536 - 46.85, "°C"
            ),
            _Value("air_humidity", "Air humidity", lambda x: 125 * x[1] / 65536 - 6, "%"),
        ),
    ),
    _PRESSURE,
)

_DL_SHT35_SENSORS = (_SHT, _BATTERY)


def _illuminance(x: Sequence[int]) -> float:
    # Math.max(Math.max(a, b), 0) * 1.5504, with the codec's literal factors.
    return max(max(1.0 * x[0] - 1.64 * x[1], 0.59 * x[0] - 0.86 * x[1]), 0) * 1.5504


_DL_IAM_SENSORS = (
    _BATTERY,
    _SHT,
    _PRESSURE,
    _Sensor(
        2,
        (
            _Value(
                "ambient_light_visible_infrared",
                "Ambient light (visible + infrared)",
                lambda x: x[0],
            ),
            _Value("ambient_light_infrared", "Ambient light (infrared)", lambda x: x[1]),
            _Value("illuminance", "Illuminance", _illuminance, "lx"),
        ),
    ),
    _Sensor(
        3,
        (
            _Value("co2_concentration", "CO2 concentration", lambda x: x[0] - 32768, "ppm"),
            _Value("co2_sensor_status", "CO2 sensor status", lambda x: x[1]),
            _Value("raw_ir_reading", "Raw IR reading", lambda x: x[2]),
        ),
    ),
    # PIR events since the last uplink.
    _Sensor(1, (_Value("activity_counter", "Activity counter", lambda x: x[0]),)),
    _Sensor(1, (_Value("total_voc", "Total VOC", lambda x: x[0], "ppb"),)),
)


def _decode(payload: bytes, sensors: Sequence[_Sensor], model: str) -> dict[str, Any]:
    header = take(payload, 0, _HEADER, f"{model} header")
    if header[0] != PROTOCOL_VERSION:
        raise DecodeError(f"protocol version {header[0]} doesn't match v2")
    flags = u16be(header, 3)
    if flags >> len(sensors):
        raise DecodeError(f"{model} flags 0x{flags:04x} select sensors the model does not have")
    result: dict[str, Any] = {"protocol_version": header[0], "device_id": u16be(header, 1)}
    at = _HEADER
    for bit, sensor in enumerate(sensors):
        if not flags & (1 << bit):
            continue
        block = take(payload, at, 2 * sensor.words, f"{model} sensor block {bit}")
        words = [u16be(block, 2 * i) for i in range(sensor.words)]
        at += len(block)
        for value in sensor.values:
            entry: dict[str, Any] = {
                "displayName": value.display_name,
                "value": js_number(value.convert(words)),
            }
            if value.unit is not None:
                entry["unit"] = value.unit
            result[value.name] = entry
    if at != len(payload):
        raise DecodeError(f"{model} frame has {len(payload) - at} bytes after its sensor blocks")
    return result


def decode_dl_pm(f_port: int, payload: bytes) -> dict[str, Any]:
    """Decode a DL-PM uplink into dl-pm.js's data object (commit ce4a1231)."""
    check_port(f_port)  # the codec ignores the port
    return _decode(payload, _DL_PM_SENSORS, "DL-PM")


def decode_dl_sht35(f_port: int, payload: bytes) -> dict[str, Any]:
    """Decode a DL-SHT35 uplink into dl-sht35.js's data object (commit 0a254aaa)."""
    check_port(f_port)
    return _decode(payload, _DL_SHT35_SENSORS, "DL-SHT35")


def decode_dl_iam(f_port: int, payload: bytes) -> dict[str, Any]:
    """Decode a DL-IAM uplink into dl-iam.js's data object (commit 0a254aaa)."""
    check_port(f_port)
    return _decode(payload, _DL_IAM_SENSORS, "DL-IAM")


def _value(name: str) -> tuple[str, str]:
    return (name, "value")


_PA_TO_HPA = 0.01

DL_PM = Profile(
    id="decentlab/dl-pm",
    vendor="decentlab",
    model="dl-pm",
    description="Decentlab DL-PM: particulate matter, temperature, humidity and pressure",
    decode=decode_dl_pm,
    mappings=(
        MetricMapping(_value("pm1_0_mass_concentration"), "pm1_0", MetricKind.GAUGE, decimals=1),
        MetricMapping(_value("pm2_5_mass_concentration"), "pm2_5", MetricKind.GAUGE, decimals=1),
        MetricMapping(_value("pm10_mass_concentration"), "pm10", MetricKind.GAUGE, decimals=1),
        MetricMapping(_value("air_temperature"), "temperature", MetricKind.GAUGE, decimals=2),
        MetricMapping(_value("air_humidity"), "relative_humidity", MetricKind.GAUGE, decimals=2),
        MetricMapping(
            _value("barometric_pressure"),
            "barometric_pressure",
            MetricKind.GAUGE,
            _PA_TO_HPA,
            decimals=2,
        ),
        MetricMapping(_value("battery_voltage"), "battery_voltage", MetricKind.GAUGE, decimals=3),
    ),
    reporting_interval_s=600,
    examples=load_examples("decentlab", "dl-pm"),
    version="1",
)

DL_SHT35 = Profile(
    id="decentlab/dl-sht35",
    vendor="decentlab",
    model="dl-sht35",
    description="Decentlab DL-SHT35: air temperature and humidity in a radiation shield",
    decode=decode_dl_sht35,
    mappings=(
        MetricMapping(_value("air_temperature"), "temperature", MetricKind.GAUGE, decimals=2),
        MetricMapping(_value("air_humidity"), "relative_humidity", MetricKind.GAUGE, decimals=2),
        MetricMapping(_value("battery_voltage"), "battery_voltage", MetricKind.GAUGE, decimals=3),
    ),
    reporting_interval_s=600,
    examples=load_examples("decentlab", "dl-sht35"),
    version="1",
)

DL_IAM = Profile(
    id="decentlab/dl-iam",
    vendor="decentlab",
    model="dl-iam",
    description="Decentlab DL-IAM: indoor ambiance (CO2, TVOC, climate, light, PIR activity)",
    decode=decode_dl_iam,
    mappings=(
        MetricMapping(_value("air_temperature"), "temperature", MetricKind.GAUGE, decimals=2),
        MetricMapping(_value("air_humidity"), "relative_humidity", MetricKind.GAUGE, decimals=2),
        MetricMapping(
            _value("barometric_pressure"),
            "barometric_pressure",
            MetricKind.GAUGE,
            _PA_TO_HPA,
            decimals=2,
        ),
        MetricMapping(_value("illuminance"), "illuminance", MetricKind.GAUGE),
        MetricMapping(_value("co2_concentration"), "co2", MetricKind.GAUGE, decimals=0),
        MetricMapping(_value("total_voc"), "tvoc", MetricKind.GAUGE, decimals=0),
        MetricMapping(_value("activity_counter"), "motion_count", MetricKind.GAUGE, decimals=0),
        MetricMapping(_value("battery_voltage"), "battery_voltage", MetricKind.GAUGE, decimals=3),
    ),
    reporting_interval_s=600,
    examples=load_examples("decentlab", "dl-iam"),
    version="1",
)
