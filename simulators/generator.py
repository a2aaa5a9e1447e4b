"""Uplink generation: every device of a scenario reporting on its interval, in time order."""

from __future__ import annotations

import hashlib
import heapq
import time as clock
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from datahub.domain import SourceFormat
from simulators.envelopes import RadioLink, RadioMeta, Session, build_message, new_session
from simulators.scenario import FieldPath, Scenario, ScenarioError, SimDevice
from simulators.values import DeviceValues, device_rng


class Encoder(Protocol):
    """The inverse of a decoder (simulators.encoders)."""

    @property
    def fields(self) -> tuple[FieldPath, ...]: ...

    def quantize(self, values: Mapping[FieldPath, float]) -> dict[FieldPath, Any]: ...

    def encode(self, values: Mapping[FieldPath, Any]) -> tuple[int, bytes]: ...


@dataclass(frozen=True, slots=True)
class SimUplink:
    """One generated uplink; `values` are the quantized decoded values the payload carries."""

    device: SimDevice
    source: str
    f_cnt: int
    f_port: int
    payload: bytes
    time: datetime
    values: Mapping[FieldPath, Any]
    radio: RadioMeta
    session: Session

    def message(self, format: SourceFormat) -> tuple[str, bytes]:
        """This uplink as the network server of `format` publishes it: (topic, body)."""
        return build_message(
            format,
            device=self.device,
            f_cnt=self.f_cnt,
            f_port=self.f_port,
            payload=self.payload,
            time=self.time,
            radio=self.radio,
            session=self.session,
        )


class _DeviceRun:
    """One device during one run: its values, radio link, session and frame counter."""

    def __init__(
        self,
        device: SimDevice,
        scenario: Scenario,
        encoder: Encoder,
        seed: int | str,
    ) -> None:
        self.device = device
        self.encoder = encoder
        self.values = DeviceValues(
            scenario.fleet(device.fleet).values,
            rng=device_rng(seed, device.dev_eui, "values"),
            zone=scenario.zone,
        )
        radio_rng = device_rng(seed, device.dev_eui, "radio")
        self.session = new_session(radio_rng, device)
        self.link = RadioLink(device, scenario.source(device.source).gateways, radio_rng)
        # A fresh session (as after an OTAA join) starts counting frames at 0.
        self.f_cnt = 0
        digest = hashlib.sha256(f"{seed}/phase/{device.dev_eui}".encode()).digest()
        # Devices switched on at different moments: spread first reports over one interval.
        self.phase = timedelta(
            microseconds=int.from_bytes(digest[:8], "big") % (device.interval_s * 1_000_000)
        )
        self.interval = timedelta(seconds=device.interval_s)

    def uplink(self, time: datetime) -> SimUplink:
        quantized = self.encoder.quantize(self.values.at(time))
        f_port, payload = self.encoder.encode(quantized)
        uplink = SimUplink(
            device=self.device,
            source=self.device.source,
            f_cnt=self.f_cnt,
            f_port=f_port,
            payload=payload,
            time=time,
            values=quantized,
            radio=self.link.next(time),
            session=self.session,
        )
        self.f_cnt += 1
        return uplink


def _default_encoders() -> Mapping[str, Encoder]:
    from simulators.encoders import ENCODERS

    return ENCODERS


def generate(
    scenario: Scenario,
    *,
    seed: int | str = 0,
    start: datetime | None = None,
    count: int | None = None,
    realtime: bool = False,
    end: datetime | None = None,
    speed: float | None = None,
    encoders: Mapping[str, Encoder] | None = None,
) -> Iterator[SimUplink]:
    """Yield the scenario's uplinks in time order, lazily; the same seed gives the same uplinks.

    Backfill (realtime=False): each device first reports at `start` (default: now) plus a
    fixed phase below its interval, then every `interval_s`; nothing is dated after `end`.
    The hub rejects uplinks dated more than `ingest.max_clock_skew_s` ahead, so a long
    backfill should start in the past and end now.
    Realtime: devices take turns in the same order, but each uplink is dated when it is
    drawn (so a rate-limited publisher sends fresh uplinks); with `speed` the generator also
    waits for each report, `speed` times faster than the devices' real intervals. A `start`
    in the past gives history first: reports due before the call are dated when they were
    due and come without waiting, then the fleet goes on live.
    Stops after `count` uplinks (None: no limit).
    """
    if count is not None and count < 0:
        raise ValueError("count must not be negative")
    if speed is not None and speed <= 0:
        raise ValueError("speed must be positive")
    if start is None:
        start = datetime.now(UTC)
    elif start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    encoders = _default_encoders() if encoders is None else encoders
    if missing := sorted({d.profile for d in scenario.devices()} - set(encoders)):
        raise ScenarioError(f"no encoder for profile {', '.join(missing)}")
    runs = [
        _DeviceRun(device, scenario, encoders[device.profile], seed)
        for device in scenario.devices()
    ]
    schedule = [(start + run.phase, index) for index, run in enumerate(runs)]
    heapq.heapify(schedule)
    started = clock.monotonic()
    live_from = datetime.now(UTC)
    produced = 0
    while schedule and (count is None or produced < count):
        due, index = heapq.heappop(schedule)
        if not realtime and end is not None and due > end:
            return
        run = runs[index]
        if realtime:
            if speed is not None:
                # History (due before the call) comes at once; the rest at the sped-up pace.
                ahead = (due - max(start, live_from)).total_seconds()
                wait = ahead / speed - (clock.monotonic() - started)
                if wait > 0:
                    clock.sleep(wait)
            # Reports due before the generator started are history: dated when they were due.
            uplink = run.uplink(due if due < live_from else datetime.now(UTC))
        else:
            uplink = run.uplink(due)
        heapq.heappush(schedule, (due + run.interval, index))
        produced += 1
        yield uplink
