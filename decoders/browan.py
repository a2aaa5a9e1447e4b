"""Browan sensors: TBMS100 (PIR motion, with board temperature)."""

from __future__ import annotations

from typing import Any

from decoders._frame import check_length, check_port
from decoders.catalog import MetricKind, MetricMapping, Profile, load_examples
from decoders.jsnum import js_number

TBMS100_PORT = 102


def decode_tbms100(f_port: int, payload: bytes) -> dict[str, Any]:
    """Decode a TBMS100 uplink into tbms100.js's data object (commit 62c8acdd)."""
    check_port(f_port, {TBMS100_PORT})
    if not payload or payload == bytes(8):
        # The codec returns {} (no data, no errors) for an empty or all-zero frame.
        return {}
    check_length(payload, 8, frame="A TBMS100 status frame")
    b = payload
    return {
        "status": b[0] & 0x01,  # 1 occupied (motion within the hold time), 0 free
        "battery": js_number((25 + (b[1] & 0x0F)) / 10),  # V, in 0.1 V steps from 2.5 V
        "temperatureBoard": (b[2] & 0x7F) - 32,  # °C
        "time": (b[4] << 8) | b[3],  # minutes since the last motion event
        "count": (b[7] << 16) | (b[6] << 8) | b[5],  # motion events since power-on
    }


TBMS100 = Profile(
    id="browan/tbms100",
    vendor="browan",
    model="tbms100",
    description="Browan TBMS100: PIR motion and occupancy, with board temperature",
    decode=decode_tbms100,
    mappings=(
        MetricMapping(("status",), "occupancy", MetricKind.STATE, decimals=0),
        MetricMapping(
            ("count",), "motion_count", MetricKind.COUNTER, wrap=24, decimals=0
        ),  # 3 bytes
        MetricMapping(("temperatureBoard",), "temperature", MetricKind.GAUGE, decimals=0),
        MetricMapping(("battery",), "battery_voltage", MetricKind.GAUGE, decimals=1),
    ),
    reporting_interval_s=3600,
    examples=load_examples("browan", "tbms100"),
    version="1",
)
