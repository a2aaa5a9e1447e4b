"""Frozen value types shared by the ingest and the API flows; no I/O here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from datahub.privacy import PrivacyClass

# The name of a supplier, dataset or consumer in URLs, files and commands: lower-case
# letters, digits and '-', at most 63 characters, not starting with '-'.
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class City(StrEnum):
    DORTMUND = "dortmund"
    SCHWERTE = "schwerte"


class Purpose(StrEnum):
    """What a consumer uses data for; it decides the tariff."""

    PUBLIC_INTEREST = "public_interest"
    RESEARCH = "research"
    COMMERCIAL = "commercial"


class LicenceClass(StrEnum):
    """Who may read a dataset: anyone, granted consumers, or granted and paying consumers."""

    OPEN = "open"
    RESTRICTED = "restricted"
    COMMERCIAL = "commercial"


# The licence id of a dataset whose supplier has chosen no licence (yet), and its name.
# Every other dataset has a licence URL (migration 0016's check).
NO_LICENCE = "none"
NO_LICENCE_NAME = "no licence given"


class Placement(StrEnum):
    """Where a device measures: indoor or outdoor air. Limits and colour bands differ."""

    INDOOR = "indoor"
    OUTDOOR = "outdoor"


class SourceFormat(StrEnum):
    """Wire format of a network server's uplink messages."""

    TTN_V3 = "ttn-v3"
    CHIRPSTACK_V4_JSON = "chirpstack-v4-json"
    CHIRPSTACK_V4_PROTOBUF = "chirpstack-v4-protobuf"
    CHIRPSTACK_V3_JSON = "chirpstack-v3-json"


class DecodeStatus(StrEnum):
    """What became of a stored uplink's payload."""

    DECODED = "decoded"
    UNKNOWN_DEVICE = "unknown_device"
    NO_DECODER = "no_decoder"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class GatewayReception:
    """One gateway's view of an uplink."""

    gateway_id: str
    rssi: float | None = None
    snr: float | None = None


@dataclass(frozen=True, slots=True)
class Radio:
    """Radio metadata of an uplink; frequency and bandwidth in Hz."""

    gateways: tuple[GatewayReception, ...] = ()
    spreading_factor: int | None = None
    bandwidth: int | None = None
    frequency: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "gateways": [
                {"gateway_id": g.gateway_id, "rssi": g.rssi, "snr": g.snr} for g in self.gateways
            ],
            "spreading_factor": self.spreading_factor,
            "bandwidth": self.bandwidth,
            "frequency": self.frequency,
        }


@dataclass(frozen=True, slots=True)
class Uplink:
    """One LoRaWAN uplink as the hub sees it, whatever network server delivered it.

    `dedup_key` is 16 bytes, equal for every redelivery of the same uplink and different
    for any other uplink, also after a rejoin or a reset restarts `f_cnt`. `legacy_key` is
    the key the same uplink had before the scheme changed (ingest/envelope.py), where it did.
    """

    dev_eui: str
    city: City
    source: str
    received_at: datetime
    f_port: int | None
    f_cnt: int
    payload: bytes
    dedup_key: bytes
    radio: Radio = field(default_factory=Radio)
    dev_addr: str | None = None
    ns_decoded: Mapping[str, Any] | None = None
    legacy_key: bytes | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """One normalized observation: a canonical metric's value at a time."""

    time: datetime
    dev_eui: str
    metric: str
    value: float


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class LevelCalibration:
    """What a level sensor reads (in its metric's unit) over an empty and a full container."""

    empty: float
    full: float

    def fill(self, reading: float) -> float:
        """Return the share of the container that is full, 0..1, for one reading."""
        share = (reading - self.empty) / (self.full - self.empty)
        return min(1.0, max(0.0, share))


@dataclass(frozen=True, slots=True)
class Device:
    """A registry entry: which profile decodes a device, and whose it is."""

    dev_eui: str
    name: str
    city: City
    supplier: str
    profile: str
    location: Location | None = None
    dataset: str | None = None  # a dataset's slug; None: the supplier's own dataset
    placement: Placement | None = None
    area: str | None = None  # a district or zone, as the supplier names it
    level: LevelCalibration | None = None
    privacy: PrivacyClass | None = None  # None: its dataset's class
