"""Dragino sensors: LHT65 (climate), LDDS75 (distance) and LSN50v2 (generic node).

Each decoder reproduces the vendor codec version named in its docstring, including the
codec's key order and its quirks; frames the codec does not decode are refused.
"""

from __future__ import annotations

from typing import Any

from decoders._frame import check_length, check_port, s16be, take, u16be, u32be
from decoders.catalog import DecodeError, MetricKind, MetricMapping, Profile, load_examples
from decoders.jsnum import int32, js_number, to_fixed

# LHT65 external sensor types (byte 6, low nibble) that lht65.js knows.
_LHT65_EXT_NONE = 0x0
_LHT65_EXT_TEMPERATURE = 0x1
_LHT65_EXT_INTERRUPT = 0x4
_LHT65_EXT_ILLUMINATION = 0x5
_LHT65_EXT_ADC = 0x6
_LHT65_EXT_COUNT16 = 0x7
_LHT65_EXT_COUNT32 = 0x8
_LHT65_EXT_DATALOG = 0x9  # DS18B20 temperature and a timestamp; battery bits move
_LHT65_EXT_ID = 0xF  # DS18B20 ROM id instead of the SHT readings
_LHT65_EXT_KNOWN = frozenset(
    {
        _LHT65_EXT_NONE,
        _LHT65_EXT_TEMPERATURE,
        _LHT65_EXT_INTERRUPT,
        _LHT65_EXT_ILLUMINATION,
        _LHT65_EXT_ADC,
        _LHT65_EXT_COUNT16,
        _LHT65_EXT_COUNT32,
        _LHT65_EXT_DATALOG,
        _LHT65_EXT_ID,
    }
)


def decode_lht65(f_port: int, payload: bytes) -> dict[str, Any]:
    """Decode an LHT65 uplink into lht65.js's data object (commit a60312a8)."""
    check_port(f_port, {2})
    if len(payload) != 11:
        # The codec returns nothing at all for these (no data, no error).
        raise DecodeError(
            "LHT65 frames are 11 bytes (battery 2, SHT temperature 2, SHT humidity 2, "
            f"external sensor type 1, external sensor data 4), got {len(payload)}"
        )
    b = payload
    ext = b[6] & 0x0F
    if b[6] & 0x40:
        raise DecodeError("LHT65 poll reply (datalog retrieval, byte 6 bit 6) is not decoded")
    if ext not in _LHT65_EXT_KNOWN:
        raise DecodeError(f"LHT65 external sensor type {ext} is unknown to the codec")

    data: dict[str, Any] = {}
    if ext == _LHT65_EXT_DATALOG:
        data["TempC_DS"] = to_fixed(s16be(b, 0) / 100, 2)
        data["Bat_status"] = b[4] >> 6
    else:
        # Top two bits: battery status (0 ultra low .. 3 good); the rest: millivolts.
        data["BatV"] = js_number((u16be(b, 0) & 0x3FFF) / 1000)
        data["Bat_status"] = b[0] >> 6
    if ext != _LHT65_EXT_ID:
        data["TempC_SHT"] = to_fixed(s16be(b, 2) / 100, 2)
        data["Hum_SHT"] = to_fixed((u16be(b, 4) & 0xFFF) / 10, 1)
    if b[6] & 0x80:
        data["No_connect"] = "Sensor no connection"

    if ext == _LHT65_EXT_NONE:
        data["Ext_sensor"] = "No external sensor"
    elif ext == _LHT65_EXT_TEMPERATURE:
        data["Ext_sensor"] = "Temperature Sensor"
        data["TempC_DS"] = to_fixed(s16be(b, 7) / 100, 2)
    elif ext == _LHT65_EXT_INTERRUPT:
        data["Work_mode"] = "Interrupt Sensor send"
        data["Exti_pin_level"] = "High" if b[7] else "Low"
        data["Exti_status"] = "True" if b[8] else "False"
    elif ext == _LHT65_EXT_ILLUMINATION:
        data["Work_mode"] = "Illumination Sensor"
        data["ILL_lx"] = u16be(b, 7)
    elif ext == _LHT65_EXT_ADC:
        data["Work_mode"] = "ADC Sensor"
        data["ADC_V"] = js_number(u16be(b, 7) / 1000)
    elif ext == _LHT65_EXT_COUNT16:
        data["Work_mode"] = "Interrupt Sensor count"
        data["Exit_count"] = u16be(b, 7)
    elif ext == _LHT65_EXT_COUNT32:
        data["Work_mode"] = "Interrupt Sensor count"
        data["Exit_count"] = int32(u32be(b, 7))  # JavaScript `<<` makes it signed
    elif ext == _LHT65_EXT_DATALOG:
        data["Work_mode"] = "DS18B20 & timestamp"
        data["Systimestamp"] = int32(u32be(b, 7))
    else:
        data["Work_mode"] = "DS18B20ID"
        data["ID"] = "".join(f"{byte:02x} " for byte in (*b[2:6], *b[7:11]))
    return data


def decode_ldds75(f_port: int, payload: bytes) -> dict[str, Any]:
    """Decode an LDDS75 uplink into ldds75.js's data object (commit 0874a8f5).

    This codec version knows one frame, 5 bytes: battery (2, top two bits masked off),
    distance in mm (2), interrupt flag (1). It swaps the two readings: `value` holds
    the distance and `distance` holds the battery millivolts, or "Invalid Reading"
    below 20 (a check meant for the distance). Every other length decodes to
    {"distance": "No Sensor"}; the vendor's 4-byte example is one, so 4 bytes are
    accepted as that, and other lengths are refused.
    """
    check_port(f_port, {2})
    if len(payload) == 4:
        return {"distance": "No Sensor"}
    check_length(payload, 5, frame="An LDDS75 frame (4-byte frames mean no sensor)")
    battery_mv = u16be(payload, 0) & 0x3FFF
    return {
        "value": u16be(payload, 2),
        "distance": battery_mv if battery_mv >= 20 else "Invalid Reading",
    }


_LSN50_MODES = {
    0: "IIC",
    1: "Distance",
    3: "3DS18B20",
    4: "Weight",
    5: "1Count",
    6: "3Interrupt",
    7: "3ADC+1DS18B20",
    8: "3DS18B20+2Count",
}

_LSN50_BANDS = {
    0x01: "EU868",
    0x02: "US915",
    0x03: "IN865",
    0x04: "AU915",
    0x05: "KZ865",
    0x06: "RU864",
    0x07: "AS923",
    0x08: "AS923_1",
    0x09: "AS923_2",
    0x0A: "AS923_3",
    0x0F: "AS923_4",
    0x0B: "CN470",
    0x0C: "EU433",
    0x0D: "KR920",
    0x0E: "MA869",
}


def _lsn50_tenths(b: bytes, at: int, *missing: bytes) -> int | float | str:
    """Read a signed 0.1 unit value; the codec writes "NULL" for 'no sensor' patterns."""
    if b[at : at + 2] in missing:
        return "NULL"
    return to_fixed(s16be(b, at) / 10, 1)


def _lsn50_uplink(payload: bytes) -> dict[str, Any]:
    b = take(payload, 0, 7, "LSN50v2 header")
    mode = (b[6] & 0x7C) >> 2
    if mode == 2:
        # The codec's branch for mode 2 (3ADC+IIC) sits inside `if (mode != 2)`: dead code.
        raise DecodeError("LSN50v2 work mode 2 (3ADC+IIC) is not decoded by the codec")
    if mode not in _LSN50_MODES:
        raise DecodeError(f"LSN50v2 work mode {mode} is unknown to the codec")
    check_length(payload, 17 if mode == 8 else 11, frame=f"An LSN50v2 mode {mode} frame")
    b = payload

    data: dict[str, Any] = {"Digital_IStatus": "H" if b[6] & 0x02 else "L"}
    data["BatV"] = js_number(u16be(b, 0) / 1000)
    data["TempC1"] = _lsn50_tenths(b, 2, b"\x7f\xff")
    if mode != 8:
        data["ADC_CH0V"] = js_number(u16be(b, 4) / 1000)
    if mode not in (5, 6):
        data["EXTI_Trigger"] = "TRUE" if b[6] & 0x01 else "FALSE"
        data["Door_status"] = "CLOSE" if b[6] & 0x80 else "OPEN"
    data["Work_mode"] = _LSN50_MODES[mode]

    if mode == 0:
        if u16be(b, 9) == 0:  # a BH1750 light sensor sends no humidity word
            data["Illum"] = u16be(b, 7)
        else:
            data["TempC_SHT"] = _lsn50_tenths(b, 7, b"\x7f\xff", b"\xff\xff")
            data["Hum_SHT"] = "NULL" if b[9:11] == b"\xff\xff" else to_fixed(u16be(b, 9) / 10, 1)
    elif mode == 1:
        data["Distance_cm"] = "NULL" if b[7:9] == b"\x00\x00" else to_fixed(u16be(b, 7) / 10, 1)
        if b[9:11] != b"\xff\xff":
            data["Distance_signal_strength"] = u16be(b, 9)
    elif mode == 3:
        data["TempC2"] = _lsn50_tenths(b, 7, b"\x7f\xff")
        data["TempC3"] = _lsn50_tenths(b, 9, b"\x7f\xff")
    elif mode == 4:
        # Word order as the codec has it: bytes 9-10 high, 7-8 low; signed through `<<`.
        data["Weight"] = int32((b[9] << 24) | (b[10] << 16) | (b[7] << 8) | b[8])
    elif mode == 5:
        data["Count"] = u32be(b, 7)
    elif mode == 6:
        data["EXTI1_Trigger"] = "TRUE" if b[6] & 0x01 else "FALSE"
        data["EXTI1_Status"] = "CLOSE" if b[6] & 0x80 else "OPEN"
        data["EXTI2_Trigger"] = "TRUE" if b[7] & 0x10 else "FALSE"
        data["EXTI2_Status"] = "CLOSE" if b[7] & 0x01 else "OPEN"
        data["EXTI3_Trigger"] = "TRUE" if b[8] & 0x10 else "FALSE"
        data["EXTI3_Status"] = "CLOSE" if b[8] & 0x01 else "OPEN"
    elif mode == 7:
        data["ADC_CH1V"] = js_number(u16be(b, 7) / 1000)
        data["ADC_CH4V"] = js_number(u16be(b, 9) / 1000)
    else:
        data["TempC2"] = _lsn50_tenths(b, 4, b"\x7f\xff")
        data["TempC3"] = _lsn50_tenths(b, 7, b"\x7f\xff")
        data["Count1"] = u32be(b, 9)
        data["Count2"] = u32be(b, 13)
    return data


def _lsn50_status(payload: bytes) -> dict[str, Any]:
    check_length(payload, 7, frame="An LSN50v2 device status frame")
    b = payload
    data: dict[str, Any] = {}
    if b[0] in _LSN50_BANDS:  # the codec leaves the key out for an unknown band
        data["freq_band"] = _LSN50_BANDS[b[0]]
    data["sub_band"] = "NULL" if b[1] == 0xFF else b[1]
    data["firm_ver"] = f"{b[2] & 0x0F}.{(b[3] >> 4) & 0x0F}.{b[3] & 0x0F}"
    data["tdc_time"] = (b[4] << 16) | (b[5] << 8) | b[6]  # seconds between uplinks
    return data


def decode_lsn50_v2(f_port: int, payload: bytes) -> dict[str, Any]:
    """Decode an LSN50v2 uplink into lsn50-v2.js's data object (commit 0a254aaa)."""
    check_port(f_port, {2, 5})
    if f_port == 2:
        return _lsn50_uplink(payload)
    return _lsn50_status(payload)


LHT65 = Profile(
    id="dragino/lht65",
    vendor="dragino",
    model="lht65",
    description="Dragino LHT65: temperature and humidity, with an optional external probe",
    decode=decode_lht65,
    mappings=(
        MetricMapping(("TempC_SHT",), "temperature", MetricKind.GAUGE, decimals=2),
        MetricMapping(("Hum_SHT",), "relative_humidity", MetricKind.GAUGE, decimals=1),
        MetricMapping(("TempC_DS",), "external_temperature", MetricKind.GAUGE, decimals=2),
        MetricMapping(("BatV",), "battery_voltage", MetricKind.GAUGE, decimals=3),
    ),
    reporting_interval_s=1200,
    examples=load_examples("dragino", "lht65"),
    version="1",
)

LDDS75 = Profile(
    id="dragino/ldds75",
    vendor="dragino",
    model="ldds75",
    description="Dragino LDDS75: ultrasonic distance, e.g. the fill level of a waste bin",
    decode=decode_ldds75,
    mappings=(
        # The codec's swap (see decode_ldds75): `value` is the distance, `distance` the
        # battery millivolts. "No Sensor" and "Invalid Reading" are not numbers.
        MetricMapping(("value",), "distance", MetricKind.GAUGE, decimals=0),
        MetricMapping(("distance",), "battery_voltage", MetricKind.GAUGE, scale=0.001, decimals=3),
    ),
    reporting_interval_s=1200,
    examples=load_examples("dragino", "ldds75"),
    version="1",
)

LSN50_V2 = Profile(
    id="dragino/lsn50-v2",
    vendor="dragino",
    model="lsn50-v2",
    description="Dragino LSN50v2: generic node; readings depend on the work mode",
    decode=decode_lsn50_v2,
    mappings=(
        # TempC1 is left out: without a probe the node sends 0, not the "NULL" pattern.
        MetricMapping(("TempC_SHT",), "temperature", MetricKind.GAUGE, decimals=1),
        MetricMapping(("Hum_SHT",), "relative_humidity", MetricKind.GAUGE, decimals=1),
        MetricMapping(("Illum",), "illuminance", MetricKind.GAUGE, decimals=0),
        MetricMapping(("Distance_cm",), "distance", MetricKind.GAUGE, scale=10.0, decimals=0),
        MetricMapping(("BatV",), "battery_voltage", MetricKind.GAUGE, decimals=3),
    ),
    reporting_interval_s=1200,
    examples=load_examples("dragino", "lsn50-v2"),
    version="1",
)
