"""A device whose frame counter resets in the middle of its stream (an ABP device that
restarts: same session, f_cnt from 1 again), for the ingest and back-fill tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

import simulators
from datahub.domain import SourceFormat


def counter_resets(
    sims: Sequence[simulators.SimUplink],
    *,
    start: datetime,
    per_cycle: int = 50,
    cycles: int = 2,
    every: timedelta = timedelta(minutes=1),
    source: str = "ttn-dortmund",
) -> list[simulators.SimUplink]:
    """One device of `source`: f_cnt 1..per_cycle, `cycles` times in one session, one
    uplink `every` from `start` on, each with a payload of its own (its profile's, taken
    from `sims`)."""
    count = per_cycle * cycles
    # Payloads by profile and port; the device is one whose profile has enough of them.
    carriers: dict[tuple[str, int], dict[bytes, simulators.SimUplink]] = {}
    for sim in sims:
        carriers.setdefault((sim.device.profile, sim.f_port), {}).setdefault(sim.payload, sim)
    template = next(
        s for s in sims if s.source == source and len(carriers[s.device.profile, s.f_port]) >= count
    )
    payloads = list(carriers[template.device.profile, template.f_port].values())
    return [
        dataclasses.replace(
            template,
            f_cnt=i % per_cycle + 1,
            time=start + i * every,
            payload=payloads[i].payload,
            values=payloads[i].values,
        )
        for i in range(count)
    ]


def ttn_body(sim: simulators.SimUplink) -> bytes:
    return sim.message(SourceFormat.TTN_V3)[1]
