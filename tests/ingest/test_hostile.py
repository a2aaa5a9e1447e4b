"""Hostile input through the whole prepare stage (envelope, decode, normalize): whatever the
bytes, every message becomes either an uplink row or a dead letter, never an exception, and
every reading is a finite number. No services: the registry is the demo scenario's."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from democatalog import demo_catalog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import decoders
import simulators
from datahub.config import Settings, SourceSettings
from datahub.domain import City, DecodeStatus, SourceFormat
from datahub.ingest.mqtt import Message
from datahub.ingest.pipeline import DeviceCache, Pipeline
from datahub.storage.devices import RegistryEntry

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SOURCES = (
    SourceSettings(name="ttn-dortmund", city=City.DORTMUND, format=SourceFormat.TTN_V3),
    SourceSettings(
        name="chirpstack-schwerte", city=City.SCHWERTE, format=SourceFormat.CHIRPSTACK_V4_JSON
    ),
)
FORMATS = {s.name: s.format for s in SOURCES}
SCENARIO = simulators.load_scenario()
SIMS = list(simulators.generate(SCENARIO, seed=3, start=NOW - timedelta(hours=2), count=300))
# One uplink of every profile, so that every decoder meets the hostile payloads.
BY_PROFILE = list({sim.device.profile: sim for sim in SIMS}.values())
_mid = itertools.count(1)


class FixedDeviceCache(DeviceCache):
    """The scenario's devices, without a database."""

    def __init__(self, entries: Mapping[str, RegistryEntry]) -> None:
        super().__init__()
        self.entries = dict(entries)

    def refresh_if_due(self, conn: psycopg.Connection) -> bool:
        return False

    def get(self, dev_eui: str) -> RegistryEntry | None:
        return self.entries.get(dev_eui)


DEVICE_CACHE = FixedDeviceCache(
    {
        d.dev_eui: RegistryEntry(device_id=i, dev_eui=d.dev_eui, profile=d.profile, city=d.city)
        for i, d in enumerate(SCENARIO.devices(), start=1)
    }
)


def pipeline(catalog: Mapping[str, decoders.Profile] | None = None) -> Pipeline:
    """A pipeline on the demo's merged catalog, or on `catalog`."""
    return Pipeline(
        Settings(sources=SOURCES),
        catalog=demo_catalog() if catalog is None else catalog,
        device_cache=DEVICE_CACHE,
        clock=lambda: NOW,
    )


def message(source: str, body: bytes, topic: str = "t") -> Message:
    return Message(source, topic, body, qos=1, mid=next(_mid), arrived_at=NOW)


def sim_message(sim: simulators.SimUplink) -> Message:
    topic, body = sim.message(FORMATS[sim.source])
    return message(sim.source, body, topic)


def assert_accounted(pipe: Pipeline, messages: list[Message]) -> None:
    """Each message is an uplink row or a dead letter; readings are finite numbers."""
    batch = pipe.prepare(messages)
    assert len(batch.uplinks) + len(batch.dead_letters) == len(messages)
    for item in batch.uplinks:
        for reading in item.readings:
            assert isinstance(reading.value, float)
            assert math.isfinite(reading.value)
        if item.row.status is not DecodeStatus.DECODED:
            assert not item.readings


HOSTILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_unmutated_uplinks_decode() -> None:
    batch = pipeline().prepare([sim_message(s) for s in BY_PROFILE])
    assert {item.row.status for item in batch.uplinks} == {DecodeStatus.DECODED}


@HOSTILE
@given(source=st.sampled_from(sorted(FORMATS)), body=st.binary(max_size=2048))
def test_arbitrary_bytes(source: str, body: bytes) -> None:
    assert_accounted(pipeline(), [message(source, body)])


@HOSTILE
@given(
    sim=st.sampled_from(BY_PROFILE),
    f_port=st.integers(0, 255),
    payload=st.binary(max_size=300),
)
def test_arbitrary_payloads_reach_every_decoder(
    sim: simulators.SimUplink, f_port: int, payload: bytes
) -> None:
    hostile = dataclasses.replace(sim, f_port=f_port, payload=payload)
    assert_accounted(pipeline(), [sim_message(hostile)])


@HOSTILE
@given(sim=st.sampled_from(BY_PROFILE), data=st.data())
def test_mutated_messages(sim: simulators.SimUplink, data: st.DataObject) -> None:
    topic, body = sim.message(FORMATS[sim.source])
    mutated = bytearray(body)
    for _ in range(data.draw(st.integers(1, 8), label="mutations")):
        at = data.draw(st.integers(0, max(len(mutated) - 1, 0)), label="at")
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]), label="action")
        if action == "flip" and mutated:
            mutated[at] ^= data.draw(st.integers(1, 255), label="mask")
        elif action == "cut":
            del mutated[at : at + data.draw(st.integers(1, 64), label="length")]
        else:
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=16), label="bytes")
    assert_accounted(pipeline(), [message(sim.source, bytes(mutated), topic)])


# What a buggy vendor decoder might return: NaN, infinities, huge and odd values.
odd_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-(2**80), 2**80)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)


@HOSTILE
@given(values=st.fixed_dictionaries({"t": odd_values, "rh": odd_values, "co2": odd_values}))
def test_odd_decoded_values_are_skipped_not_fatal(values: dict[str, Any]) -> None:
    sim = next(s for s in BY_PROFILE if s.source == "ttn-dortmund")
    profile = dataclasses.replace(
        decoders.get_profile(sim.device.profile),
        decode=lambda f_port, payload: values,
        mappings=(
            decoders.MetricMapping(("t",), "temperature", decoders.MetricKind.GAUGE),
            decoders.MetricMapping(("rh",), "relative_humidity", decoders.MetricKind.GAUGE),
            decoders.MetricMapping(("co2",), "co2", decoders.MetricKind.GAUGE, scale=1e300),
        ),
    )
    catalog = {**decoders.CATALOG, sim.device.profile: profile}
    assert_accounted(pipeline(catalog), [sim_message(sim)])


def test_nan_and_infinity_become_skipped_values() -> None:
    sim = next(s for s in BY_PROFILE if s.source == "ttn-dortmund")
    values = {"t": math.nan, "rh": math.inf, "co2": 400}
    profile = dataclasses.replace(
        decoders.get_profile(sim.device.profile),
        decode=lambda f_port, payload: values,
        mappings=(
            decoders.MetricMapping(("t",), "temperature", decoders.MetricKind.GAUGE),
            decoders.MetricMapping(("rh",), "relative_humidity", decoders.MetricKind.GAUGE),
            decoders.MetricMapping(("co2",), "co2", decoders.MetricKind.GAUGE),
        ),
    )
    batch = pipeline({sim.device.profile: profile}).prepare([sim_message(sim)])

    (item,) = batch.uplinks
    assert item.row.status is DecodeStatus.DECODED
    assert item.row.error is not None and "not finite" in item.row.error
    assert [(r.metric, r.value) for r in item.readings] == [("co2", 400.0)]
