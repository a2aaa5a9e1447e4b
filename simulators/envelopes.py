"""Network-server envelopes: an uplink as TTN v3 or ChirpStack v3/v4 publish it over MQTT.

`build_message` renders one simulated uplink as (topic, body) in the layout current servers
use (see shared/formats/). `RadioLink` gives each device plausible EU868 radio metadata: a
fixed spreading factor from its distance to the nearest gateway, per-gateway shadowing, and
per-uplink fading that decides which of its source's one to three gateways hear it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chirpstack_api import common, gw, integration

from datahub.domain import GatewayReception, Radio, SourceFormat
from simulators.scenario import GatewaySpec, SimDevice, distance_m

EU868_CHANNELS = (
    868_100_000,
    868_300_000,
    868_500_000,
    867_100_000,
    867_300_000,
    867_500_000,
    867_700_000,
    867_900_000,
)
BANDWIDTH_HZ = 125_000
RSSI_RANGE = (-120, -40)
SNR_RANGE = (-15.0, 12.0)
MAX_GATEWAYS = 3
LORAWAN_OVERHEAD_BYTES = 13  # MHDR 1 + FHDR 7 (no FOpts) + FPort 1 + MIC 4

TTN_NET_ID = "000013"
TTN_CLUSTER = "eu1"
_NAMESPACE = uuid.UUID("6f1c1b7e-5d0b-4a8e-9c55-1f6a3e7d2b90")


@dataclass(frozen=True, slots=True)
class Session:
    """A device's LoRaWAN session for one run: its network address and TTN session key id."""

    dev_addr: str  # 8 upper-case hex digits
    session_key_id: bytes  # 16 bytes


@dataclass(frozen=True, slots=True)
class Reception:
    """One gateway's reception of an uplink."""

    gateway: GatewaySpec
    rssi: int  # dBm
    snr: float  # dB
    uplink_id: int  # ChirpStack's per-gateway uplink id (uint32)


@dataclass(frozen=True, slots=True)
class RadioMeta:
    """The radio side of one uplink; `message_id` is ChirpStack's deduplication id."""

    message_id: uuid.UUID
    frequency: int  # Hz
    spreading_factor: int
    receptions: tuple[Reception, ...]
    bandwidth: int = BANDWIDTH_HZ
    coding_rate: str = "4/5"

    @property
    def data_rate(self) -> int:
        """EU868 data rate index: SF12 is DR0, SF7 is DR5."""
        return 12 - self.spreading_factor

    @property
    def channel(self) -> int:
        return EU868_CHANNELS.index(self.frequency) if self.frequency in EU868_CHANNELS else 0

    def airtime_s(self, payload_bytes: int) -> float:
        """Time on air of a LoRa frame carrying `payload_bytes` of application payload."""
        return lora_airtime_s(
            payload_bytes + LORAWAN_OVERHEAD_BYTES, self.spreading_factor, self.bandwidth
        )

    def to_domain(self, format: SourceFormat) -> Radio:
        """The radio metadata a parser of `format` should extract from this uplink's message."""
        return Radio(
            gateways=tuple(
                GatewayReception(
                    # TTN names gateways by their id; ChirpStack by their EUI in lower case.
                    gateway_id=r.gateway.id
                    if format is SourceFormat.TTN_V3
                    else r.gateway.eui.lower(),
                    rssi=r.rssi,
                    snr=r.snr,
                )
                for r in self.receptions
            ),
            spreading_factor=self.spreading_factor,
            bandwidth=self.bandwidth,
            frequency=self.frequency,
        )


def lora_airtime_s(phy_bytes: int, spreading_factor: int, bandwidth: int = BANDWIDTH_HZ) -> float:
    """LoRa time on air (Semtech AN1200.13): 8-symbol preamble, explicit header, CRC, CR 4/5."""
    symbol_s = (1 << spreading_factor) / bandwidth
    low_rate = 1 if symbol_s > 0.016 else 0
    coded = 8 * phy_bytes - 4 * spreading_factor + 28 + 16
    blocks = max(math.ceil(coded / (4 * (spreading_factor - 2 * low_rate))), 0)
    symbols = 8 + 4.25 + 8 + blocks * (1 + 4)
    return symbols * symbol_s


def new_session(rng: random.Random, device: SimDevice) -> Session:
    """A fresh session as after an OTAA join: a DevAddr in the network's range, new key id."""
    # TTN (NetID 000013) hands out 26xxxxxx/27xxxxxx; a private ChirpStack network 00/01xxxxxx.
    prefix = 0x26000000 if device.tenant == "ttn" else 0x00000000
    dev_addr = prefix | rng.getrandbits(25)
    return Session(dev_addr=f"{dev_addr:08X}", session_key_id=rng.randbytes(16))


def _spreading_factor(rssi: float) -> int:
    """The spreading factor ADR settles on for a link whose mean RSSI is `rssi`."""
    for threshold, sf in ((-95, 7), (-100, 8), (-105, 9), (-110, 10), (-115, 11)):
        if rssi >= threshold:
            return sf
    return 12


class RadioLink:
    """The radio path of one device to its source's gateways; `next()` draws one uplink's view."""

    def __init__(
        self, device: SimDevice, gateways: tuple[GatewaySpec, ...], rng: random.Random
    ) -> None:
        self._rng = rng
        self._links: list[tuple[GatewaySpec, float]] = []
        for gateway in gateways:
            distance = max(
                30.0,
                distance_m(device.latitude, device.longitude, gateway.latitude, gateway.longitude),
            )
            # Log-distance path loss for an urban area (exponent 3.1, -60 dBm at 100 m)
            # plus a fixed shadowing term per gateway (buildings in the way).
            mean = -60 - 31 * math.log10(distance / 100) + rng.gauss(0, 5)
            self._links.append((gateway, mean))
        self._links.sort(key=lambda link: -link[1])
        self.spreading_factor = _spreading_factor(self._links[0][1])

    def next(self, time: datetime) -> RadioMeta:
        """The radio side of an uplink sent at `time`.

        ChirpStack's deduplication id is a UUID its network server draws per uplink: from
        the seeded stream and the time, so a seed used again at other times never repeats
        one (a repeated id with other content would be a dedup conflict at the hub).
        """
        rng = self._rng
        receptions = []
        for index, (gateway, mean) in enumerate(self._links[:MAX_GATEWAYS]):
            rssi = mean + rng.gauss(0, 2.5)
            if rssi < RSSI_RANGE[0] and index > 0:
                continue  # too weak for this gateway; the best one always hears it
            rssi_db = round(min(RSSI_RANGE[1], max(RSSI_RANGE[0], rssi)))
            # SNR rises with the signal above the noise floor and saturates near +11 dB, as
            # an SX1301 concentrator reports it (in 0.25 dB steps).
            snr = 11 * math.tanh((rssi_db + 110) / 12) + rng.gauss(0, 1.5)
            snr = min(SNR_RANGE[1], max(SNR_RANGE[0], snr))
            receptions.append(
                Reception(
                    gateway=gateway,
                    rssi=rssi_db,
                    snr=round(snr * 4) / 4,
                    uplink_id=rng.getrandbits(32),
                )
            )
        return RadioMeta(
            message_id=uuid.UUID(
                bytes=_hash("message", rng.getrandbits(128), time.isoformat())[:16], version=4
            ),
            frequency=rng.choice(EU868_CHANNELS),
            spreading_factor=self.spreading_factor,
            receptions=tuple(receptions),
        )


# --- time and identifier formats ---------------------------------------------------------


def _nanos(time: datetime, radio: RadioMeta) -> tuple[datetime, int]:
    """The time in UTC and its nanoseconds; servers report ns, so add a sub-µs part."""
    time = time.astimezone(UTC)
    return time, time.microsecond * 1000 + radio.message_id.int % 1000


def rfc3339(time: datetime, radio: RadioMeta, *, suffix: str = "Z", trim: bool = False) -> str:
    """RFC 3339 with nanoseconds; `trim` drops trailing zeros like Go's RFC3339Nano."""
    time, nanos = _nanos(time, radio)
    fraction = f"{nanos:09d}"
    if trim:
        fraction = fraction.rstrip("0")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction}{suffix}" if fraction else f"{stamp}{suffix}"


def _duration(seconds: float) -> str:
    """A protobuf Duration in JSON: 0, 3, 6 or 9 fractional digits and an "s"."""
    nanos = round(seconds * 1e9)
    whole, frac = divmod(nanos, 1_000_000_000)
    for digits in (0, 3, 6):
        if frac % 10 ** (9 - digits) == 0:
            return (
                f"{whole}s" if digits == 0 else f"{whole}.{frac // 10 ** (9 - digits):0{digits}d}s"
            )
    return f"{whole}.{frac:09d}s"


_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)


def _ulid(time: datetime, entropy: bytes) -> str:
    """A ULID as TTS puts in correlation ids: 48-bit milliseconds, 80 bits of entropy."""
    value = (int(time.timestamp() * 1000) << 80) | int.from_bytes(entropy[:10], "big")
    # 160 bits are 32 base32 digits; the 128-bit value is the last 26 of them.
    return base64.b32encode(value.to_bytes(20, "big")).translate(_CROCKFORD)[-26:].decode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _hash(*parts: object) -> bytes:
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()


def _concentrator_timestamp(gateway: GatewaySpec, time: datetime) -> int:
    """The gateway's free-running 32-bit microsecond counter at `time`."""
    offset = int.from_bytes(_hash("clock", gateway.eui)[:4], "big")
    return (int(time.timestamp() * 1_000_000) + offset) % 2**32


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _uplink_token(gateway: GatewaySpec, timestamp: int) -> str:
    """TTS's opaque uplink token: UplinkToken{ids{gateway_ids{id, eui}}, timestamp}."""
    gateway_id = gateway.id.encode()
    ids = b"\x0a" + bytes([len(gateway_id)]) + gateway_id + b"\x12\x08" + bytes.fromhex(gateway.eui)
    antenna = b"\x0a" + bytes([len(ids)]) + ids
    return _b64(b"\x0a" + bytes([len(antenna)]) + antenna + b"\x10" + _varint(timestamp))


@functools.lru_cache(maxsize=4096)
def stable_uuid(*parts: str) -> uuid.UUID:
    """A UUID fixed by names (ChirpStack tenant, application and device-profile ids)."""
    return uuid.uuid5(_NAMESPACE, "/".join(parts))


@functools.lru_cache(maxsize=4096)
def chirpstack_v3_application_id(device: SimDevice) -> int:
    """ChirpStack v3's numeric application id, fixed by tenant and application name."""
    return 1 + int.from_bytes(_hash("v3-app", device.tenant, device.application)[:4], "big") % 999


def topic_for(format: SourceFormat, device: SimDevice) -> str:
    """The MQTT topic the network server publishes the device's uplinks on."""
    if format is SourceFormat.TTN_V3:
        return f"v3/{device.application}@{device.tenant}/devices/{device.device_id}/up"
    if format is SourceFormat.CHIRPSTACK_V3_JSON:
        application = chirpstack_v3_application_id(device)
        return f"application/{application}/device/{device.dev_eui.lower()}/event/up"
    application_uuid = stable_uuid("application", device.tenant, device.application)
    return f"application/{application_uuid}/device/{device.dev_eui.lower()}/event/up"


# --- the four formats ----------------------------------------------------------------------


def ttn_v3_uplink(
    *,
    device: SimDevice,
    f_cnt: int,
    f_port: int,
    payload: bytes,
    time: datetime,
    radio: RadioMeta,
    session: Session,
) -> dict[str, Any]:
    """The Things Stack (>= 3.22) `up` message; zero and false fields omitted as TTS does."""
    stamp = rfc3339(time, radio)
    entropy = _hash("ttn", radio.message_id)
    brand, model = device.profile.split("/", 1)
    rx_metadata = []
    for reception in radio.receptions:
        gateway = reception.gateway
        timestamp = _concentrator_timestamp(gateway, time)
        rx: dict[str, Any] = {
            "gateway_ids": {"gateway_id": gateway.id, "eui": gateway.eui},
            "time": stamp,
            "timestamp": timestamp,
            "rssi": reception.rssi,
            "channel_rssi": reception.rssi,
            "snr": reception.snr,
            "location": {
                "latitude": gateway.latitude,
                "longitude": gateway.longitude,
                "altitude": gateway.altitude,
                "source": "SOURCE_REGISTRY",
            },
            "uplink_token": _uplink_token(gateway, timestamp),
            "channel_index": radio.channel,
            "received_at": stamp,
        }
        if not radio.channel:
            del rx["channel_index"]
        rx_metadata.append(rx)
    first_gateway = radio.receptions[0].gateway
    uplink: dict[str, Any] = {
        "session_key_id": _b64(session.session_key_id),
        "f_port": f_port,
        "f_cnt": f_cnt,
        "frm_payload": _b64(payload),
        "rx_metadata": rx_metadata,
        "settings": {
            "data_rate": {
                "lora": {
                    "bandwidth": radio.bandwidth,
                    "spreading_factor": radio.spreading_factor,
                    "coding_rate": radio.coding_rate,
                }
            },
            "frequency": str(radio.frequency),
            "timestamp": _concentrator_timestamp(first_gateway, time),
            "time": stamp,
        },
        "received_at": stamp,
        "consumed_airtime": _duration(radio.airtime_s(len(payload))),
        "locations": {
            "user": {
                "latitude": device.latitude,
                "longitude": device.longitude,
                "altitude": device.altitude,
                "source": "SOURCE_REGISTRY",
            }
        },
        "version_ids": {
            "brand_id": brand,
            "model_id": model,
            "hardware_version": "1.0",
            "firmware_version": "1.0",
            "band_id": "EU_863_870",
        },
        "network_ids": {
            "net_id": TTN_NET_ID,
            "tenant_id": device.tenant,
            "cluster_id": TTN_CLUSTER,
            "cluster_address": f"{TTN_CLUSTER}.cloud.thethings.network",
        },
    }
    if not f_cnt:
        del uplink["f_cnt"]
    if not payload:
        del uplink["frm_payload"]
    if not device.altitude:
        del uplink["locations"]["user"]["altitude"]
    return {
        "end_device_ids": {
            "device_id": device.device_id,
            "application_ids": {"application_id": device.application},
            "dev_eui": device.dev_eui,
            "join_eui": device.join_eui,
            "dev_addr": session.dev_addr,
        },
        "correlation_ids": [
            f"as:up:{_ulid(time, entropy[0:10])}",
            f"gs:conn:{_ulid(time, _hash('conn', first_gateway.id)[:10])}",
            f"gs:up:receive:{_ulid(time, entropy[10:20])}",
            f"gs:uplink:{_ulid(time, entropy[20:30])}",
            f"ns:uplink:{_ulid(time, entropy[2:12])}",
            f"rpc:/ttn.lorawan.v3.GsNs/HandleUplink:{_ulid(time, entropy[12:22])}",
            f"rpc:/ttn.lorawan.v3.NsAs/HandleUplink:{_ulid(time, entropy[22:32])}",
        ],
        "received_at": stamp,
        "uplink_message": uplink,
    }


def chirpstack_v4_uplink(
    *,
    device: SimDevice,
    f_cnt: int,
    f_port: int,
    payload: bytes,
    time: datetime,
    radio: RadioMeta,
    session: Session,
) -> dict[str, Any]:
    """ChirpStack (>= 4.11) UplinkEvent as its JSON encoding; no codec, so no `object`."""
    stamp = rfc3339(time, radio, suffix="+00:00")
    rx_info = []
    for reception in radio.receptions:
        gateway = reception.gateway
        location: dict[str, Any] = {"latitude": gateway.latitude, "longitude": gateway.longitude}
        if gateway.altitude:
            location["altitude"] = gateway.altitude
        rx: dict[str, Any] = {
            "gatewayId": gateway.eui.lower(),
            "uplinkId": reception.uplink_id,
            "nsTime": stamp,
            "rssi": reception.rssi,
            "snr": reception.snr,
            "channel": radio.channel,
            "location": location,
            "context": _b64(_concentrator_timestamp(gateway, time).to_bytes(4, "big")),
            "crcStatus": "CRC_OK",
        }
        if not radio.channel:
            del rx["channel"]  # gw.proto fields equal to 0 are left out
        rx_info.append(rx)
    return {
        "deduplicationId": str(radio.message_id),
        "time": stamp,
        "deviceInfo": {
            "tenantId": str(stable_uuid("tenant", device.tenant)),
            "tenantName": device.tenant,
            "applicationId": str(stable_uuid("application", device.tenant, device.application)),
            "applicationName": device.application,
            "deviceProfileId": str(stable_uuid("device-profile", device.tenant, device.profile)),
            "deviceProfileName": device.profile,
            "deviceName": device.name,
            "devEui": device.dev_eui.lower(),
            "deviceClassEnabled": "CLASS_A",
            "tags": {"supplier": device.supplier, "fleet": device.fleet},
        },
        "devAddr": session.dev_addr.lower(),
        "adr": True,
        "dr": radio.data_rate,
        "fCnt": f_cnt,
        "fPort": f_port,
        "confirmed": False,
        "data": _b64(payload),
        "rxInfo": rx_info,
        "txInfo": {
            "frequency": radio.frequency,
            "modulation": {
                "lora": {
                    "bandwidth": radio.bandwidth,
                    "spreadingFactor": radio.spreading_factor,
                    "codeRate": "CR_" + radio.coding_rate.replace("/", "_"),
                }
            },
        },
        "regionConfigId": "eu868",
    }


def chirpstack_v3_uplink(
    *,
    device: SimDevice,
    f_cnt: int,
    f_port: int,
    payload: bytes,
    time: datetime,
    radio: RadioMeta,
    session: Session,
) -> dict[str, Any]:
    """ChirpStack Application Server v3 `json_v3` DataUpPayload (its default marshaler)."""
    del session  # json_v3 carries no devAddr
    stamp = rfc3339(time, radio, trim=True)
    return {
        "applicationID": str(chirpstack_v3_application_id(device)),
        "applicationName": device.application,
        "deviceName": device.name,
        "deviceProfileName": device.profile,
        "deviceProfileID": str(stable_uuid("device-profile", device.tenant, device.profile)),
        "devEUI": device.dev_eui.lower(),
        "rxInfo": [
            {
                "gatewayID": r.gateway.eui.lower(),
                # The v3 gateway bridge draws an uplink id per reception.
                "uplinkID": str(
                    uuid.UUID(bytes=_hash("v3-up", radio.message_id, r.uplink_id)[:16], version=4)
                ),
                "name": r.gateway.id,
                "time": stamp,
                "rssi": r.rssi,
                "loRaSNR": r.snr,
                "location": {
                    "latitude": r.gateway.latitude,
                    "longitude": r.gateway.longitude,
                    "altitude": r.gateway.altitude,
                },
            }
            for r in radio.receptions
        ],
        "txInfo": {"frequency": radio.frequency, "dr": radio.data_rate},
        "adr": True,
        "fCnt": f_cnt,
        "fPort": f_port,
        "data": _b64(payload),
        "tags": {"supplier": device.supplier, "fleet": device.fleet},
    }


def chirpstack_v4_protobuf(
    *,
    device: SimDevice,
    f_cnt: int,
    f_port: int,
    payload: bytes,
    time: datetime,
    radio: RadioMeta,
    session: Session,
) -> bytes:
    """The ChirpStack v4 UplinkEvent in its protobuf encoding: the JSON event, field by field."""
    utc, nanos = _nanos(time, radio)
    seconds = int(utc.replace(microsecond=0).timestamp())
    event = integration.UplinkEvent(
        deduplication_id=str(radio.message_id),
        dev_addr=session.dev_addr.lower(),
        adr=True,
        dr=radio.data_rate,
        f_cnt=f_cnt,
        f_port=f_port,
        confirmed=False,
        data=payload,
        region_config_id="eu868",
    )
    event.time.seconds, event.time.nanos = seconds, nanos
    info = event.device_info
    info.tenant_id = str(stable_uuid("tenant", device.tenant))
    info.tenant_name = device.tenant
    info.application_id = str(stable_uuid("application", device.tenant, device.application))
    info.application_name = device.application
    info.device_profile_id = str(stable_uuid("device-profile", device.tenant, device.profile))
    info.device_profile_name = device.profile
    info.device_name = device.name
    info.dev_eui = device.dev_eui.lower()
    info.device_class_enabled = common.DeviceClass.CLASS_A
    info.tags.update({"supplier": device.supplier, "fleet": device.fleet})
    for reception in radio.receptions:
        gateway = reception.gateway
        rx = event.rx_info.add(
            gateway_id=gateway.eui.lower(),
            uplink_id=reception.uplink_id,
            rssi=reception.rssi,
            snr=reception.snr,
            channel=radio.channel,
            context=_concentrator_timestamp(gateway, time).to_bytes(4, "big"),
            crc_status=gw.CRCStatus.CRC_OK,
        )
        rx.ns_time.seconds, rx.ns_time.nanos = seconds, nanos
        rx.location.latitude = gateway.latitude
        rx.location.longitude = gateway.longitude
        rx.location.altitude = gateway.altitude
    event.tx_info.frequency = radio.frequency
    lora = event.tx_info.modulation.lora
    lora.bandwidth = radio.bandwidth
    lora.spreading_factor = radio.spreading_factor
    lora.code_rate = gw.CodeRate.Value("CR_" + radio.coding_rate.replace("/", "_"))
    body: bytes = event.SerializeToString()
    return body


def _json(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def build_message(
    format: SourceFormat,
    *,
    device: SimDevice,
    f_cnt: int,
    f_port: int,
    payload: bytes,
    time: datetime,
    radio: RadioMeta,
    session: Session,
) -> tuple[str, bytes]:
    """Render one uplink as the network server of `format` publishes it: (topic, body)."""
    fields: dict[str, Any] = {
        "device": device,
        "f_cnt": f_cnt,
        "f_port": f_port,
        "payload": payload,
        "time": time,
        "radio": radio,
        "session": session,
    }
    topic = topic_for(format, device)
    if format is SourceFormat.TTN_V3:
        return topic, _json(ttn_v3_uplink(**fields))
    if format is SourceFormat.CHIRPSTACK_V4_JSON:
        return topic, _json(chirpstack_v4_uplink(**fields))
    if format is SourceFormat.CHIRPSTACK_V4_PROTOBUF:
        return topic, chirpstack_v4_protobuf(**fields)
    if format is SourceFormat.CHIRPSTACK_V3_JSON:
        return topic, _json(chirpstack_v3_uplink(**fields))
    raise ValueError(f"unknown source format {format!r}")
