"""The SensorThings identity and JSON of the hub's readings, shared by the API
(api/sensorthings/) and the ingest's publisher (ingest/publish.py).

Ids are integers derived from stable database keys, so they survive restarts, re-imports
and rebuilt rollups, and no id is stored per reading:

- a Thing is a device: `device.id`;
- a Datastream is one device's series of one metric: `device_id * 100 + metric_id`
  (`metric.id` is 1..99), e.g. Datastream 4217 is metric 17 of device 42;
- an Observation is one reading, `(device_id, metric, time)`:
  `datastream_id * 2**36 + t`, where `t` counts sixteenths of a second from
  2000-01-03T00:00Z to the reading's time (36 bits: until the year 2136). `id >> 36` is
  the Datastream's id.

Ids stay below 2**63, so a signed 64-bit integer holds them (Java clients, the OGC test
suite), which caps device ids at 1,342,176. A reading's key has microseconds; the id has
a sixteenth of a second: it names one reading as long as a Datastream has at most one
reading per 62.5 ms, which LoRaWAN guarantees for readings timed by the network server
(a class A device listens in two receive windows, 1 s and 2 s after each uplink, before
it may send again). Should two readings of a Datastream fall in one such slot, the id
names the earlier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
METRIC_SLOTS = 100  # metric ids are 1..99
TIME_BITS = 36
TICKS_PER_S = 16
DATASTREAM_LIMIT = 2 ** (63 - TIME_BITS)  # Datastream ids are below this
MAX_DEVICE_ID = (DATASTREAM_LIMIT - METRIC_SLOTS) // METRIC_SLOTS  # 1,342,176
TICK = timedelta(seconds=1 / TICKS_PER_S)
# What an Observation of the hub is: one number measured at one time.
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


def datastream_id(device_id: int, metric_id: int) -> int:
    """The id of a device's Datastream of one metric."""
    return device_id * METRIC_SLOTS + metric_id


def split_datastream_id(value: int) -> tuple[int, int] | None:
    """Return (device id, metric id) of a Datastream id; None if no Datastream can have it."""
    if not 0 < value < DATASTREAM_LIMIT:
        return None
    device_id, metric_id = divmod(value, METRIC_SLOTS)
    if device_id < 1 or metric_id < 1:
        return None
    return device_id, metric_id


def ticks(time: datetime) -> int:
    """Sixteenths of a second from ORIGIN to `time`, rounded down."""
    delta = time - ORIGIN
    return (delta.days * 86_400 + delta.seconds) * TICKS_PER_S + delta.microseconds * 16 // 10**6


def observation_id(datastream: int, time: datetime) -> int:
    """The id of the reading of Datastream `datastream` at `time`."""
    return (datastream << TIME_BITS) + ticks(time)


@dataclass(frozen=True, slots=True)
class ObservationKey:
    """Where an Observation id points: a Datastream and the slot of time holding the reading."""

    device_id: int
    metric_id: int
    start: datetime  # inclusive
    end: datetime  # exclusive


def split_observation_id(value: int) -> ObservationKey | None:
    """Return the reading an Observation id names; None if no Observation can have it."""
    if value <= 0 or value >= 2**63:
        return None
    parts = split_datastream_id(value >> TIME_BITS)
    if parts is None:
        return None
    tick = value & ((1 << TIME_BITS) - 1)
    start = ORIGIN + timedelta(microseconds=tick * 10**6 // TICKS_PER_S)
    return ObservationKey(parts[0], parts[1], start, start + TICK)


def format_time(value: datetime) -> str:
    """Render a time as ISO 8601 in UTC with a `Z`, as SensorThings clients parse it."""
    return value.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"


def observation_json(
    base: str, *, datastream: int, time: datetime, value: float | None, decoder: str | None
) -> dict[str, Any]:
    """Render one reading as a SensorThings Observation; `base` is the service root URL.

    Its phenomenon is the reading's time, and so is its result time: the network server
    timed the uplink, and the decoder produced the result from it at once.
    """
    oid = observation_id(datastream, time)
    link = f"{base}/Observations({oid})"
    when = format_time(time)
    return {
        "@iot.id": oid,
        "@iot.selfLink": link,
        "phenomenonTime": when,
        "resultTime": when,
        "result": value,
        "parameters": {"decoder": decoder} if decoder is not None else {},
        "Datastream@iot.navigationLink": f"{link}/Datastream",
        "FeatureOfInterest@iot.navigationLink": f"{link}/FeatureOfInterest",
    }
