"""Netvox sensors: R718A (temperature and humidity for low temperatures).

Reproduces payload/r711_r718a_r718ab_r720a.js (commit 0a254aaa), shared by R711/R712,
R718A, R718AB and R720A. Reports arrive on f_port 6 (byte 2: 0 version report,
1 status report), responses to configuration commands on f_port 7; frames are 11 bytes.
"""

from __future__ import annotations

from typing import Any

from decoders._frame import check_length, check_port, u16be
from decoders.catalog import DecodeError, MetricKind, MetricMapping, Profile, load_examples
from decoders.jsnum import js_number, js_string

_REPORT_PORT = 6
_CONFIG_PORT = 7

_DEVICES = {1: "R711(R712)", 11: "R718A", 19: "R718AB", 110: "R720A"}


def _device(code: int) -> str:
    if code not in _DEVICES:
        raise DecodeError(f"Netvox device type {code} is not one this codec decodes")
    return _DEVICES[code]


def _report(b: bytes) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if b[2] == 0x00:
        data["Device"] = _device(b[1])
        data["SWver"] = js_number(b[3] / 10)
        data["HWver"] = b[4]
        data["Datecode"] = b[5:9].hex()
        return data
    if b[2] != 0x01:
        raise DecodeError(f"unknown Netvox report type {b[2]}")
    if b[3] & 0x80:
        # Bit 7 flags a low battery; the codec then turns Volt into a string.
        data["Volt"] = js_string((b[3] & 0x7F) / 10) + "(low battery)"
    else:
        data["Volt"] = js_number(b[3] / 10)
    data["Device"] = _device(b[1])
    raw = u16be(b, 4)
    if b[4] & 0x80:
        data["Temp"] = js_number((0x10000 - raw) / 100 * -1)
    else:
        data["Temp"] = js_number(raw / 100)
    data["Humi"] = js_number(u16be(b, 6) / 100)
    return data


def _config_response(b: bytes) -> dict[str, Any]:
    data: dict[str, Any] = {"Device": _device(b[1])}
    if b[0] == 0x81:
        data["Cmd"] = "ConfigReportRsp"
        data["Status"] = "Success" if b[2] == 0x00 else "Failure"
    elif b[0] == 0x82:
        data["Cmd"] = "ReadConfigReportRsp"
        data["MinTime"] = u16be(b, 2)  # s
        data["MaxTime"] = u16be(b, 4)  # s
        data["BatteryChange"] = js_number(b[6] / 10)  # V
        data["TempChange"] = js_number(u16be(b, 7) / 100)  # °C
        data["HumiChange"] = js_number(u16be(b, 9) / 100)  # %
    else:
        raise DecodeError(f"unknown Netvox command 0x{b[0]:02x} on f_port 7")
    return data


def decode_r718a(f_port: int, payload: bytes) -> dict[str, Any]:
    """Decode an R718A uplink into the Netvox codec's data object."""
    check_port(f_port, {_REPORT_PORT, _CONFIG_PORT})
    check_length(payload, 11, frame="A Netvox frame")
    if f_port == _REPORT_PORT:
        return _report(payload)
    return _config_response(payload)


R718A = Profile(
    id="netvox/r718a",
    vendor="netvox",
    model="r718a",
    description="Netvox R718A: temperature and humidity, for cold environments",
    decode=decode_r718a,
    mappings=(
        MetricMapping(("Temp",), "temperature", MetricKind.GAUGE, decimals=2),
        MetricMapping(("Humi",), "relative_humidity", MetricKind.GAUGE, decimals=2),
        # A string ("3.2(low battery)") when the low-battery bit is set: not stored.
        MetricMapping(("Volt",), "battery_voltage", MetricKind.GAUGE, decimals=1),
    ),
    reporting_interval_s=3600,
    examples=load_examples("netvox", "r718a"),
    version="1",
)
