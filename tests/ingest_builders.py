"""Builders of the ingest tests on a database: registry, simulated messages, stored readings."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import psycopg
from democatalog import demo_catalog

import decoders
import simulators
from datahub.config import Settings, SourceSettings
from datahub.domain import City, SourceFormat
from datahub.ingest import decode, normalize
from datahub.ingest.mqtt import Message
from datahub.ingest.pipeline import Pipeline
from datahub.storage import devices, suppliers
from datahub.storage.suppliers import SupplierRow

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=1)
SOURCES = (
    SourceSettings(name="ttn-dortmund", city=City.DORTMUND, format=SourceFormat.TTN_V3),
    SourceSettings(
        name="chirpstack-schwerte", city=City.SCHWERTE, format=SourceFormat.CHIRPSTACK_V4_JSON
    ),
)
_mid = itertools.count(1)

# (dev_eui, metric, value, decoder name): a stored reading with its provenance.
Stored = tuple[str, str, float, str | None]


def register(conn: psycopg.Connection, scenario: simulators.Scenario) -> None:
    """Register every device of the scenario."""
    rows = simulators.registry_rows(scenario)
    ids = suppliers.upsert_suppliers(
        conn,
        suppliers=list(
            {
                r["supplier"]: SupplierRow(r["supplier"], r["supplier_name"], r["supplier_kind"])
                for r in rows
            }.values()
        ),
    )
    devices.upsert_devices(
        conn, devices=[d.to_device() for d in scenario.devices()], supplier_ids=ids
    )


def generate(scenario: simulators.Scenario, count: int) -> list[simulators.SimUplink]:
    return list(simulators.generate(scenario, seed=7, start=NOW - timedelta(hours=2), count=count))


def message(uplink: simulators.SimUplink, *, payload: bytes | None = None) -> Message:
    """The uplink's message; with `payload`, the same envelope (same dedup key) around it."""
    topic, body = simulators.build_message(
        next(s.format for s in SOURCES if s.name == uplink.source),
        device=uplink.device,
        f_cnt=uplink.f_cnt,
        f_port=uplink.f_port,
        payload=uplink.payload if payload is None else payload,
        time=uplink.time,
        radio=uplink.radio,
        session=uplink.session,
    )
    return Message(uplink.source, topic, body, qos=1, mid=next(_mid), arrived_at=NOW)


def pipeline(settings: Settings) -> Pipeline:
    return Pipeline(settings, catalog=demo_catalog(), clock=lambda: NOW)


def ingest(
    conn: psycopg.Connection, settings: Settings, sims: Sequence[simulators.SimUplink]
) -> None:
    """Run simulated uplinks through the ingest pipeline into the database."""
    pipeline(settings).process(conn, [message(s) for s in sims])


def expected(
    sims: Sequence[simulators.SimUplink], catalog: Mapping[str, decoders.Profile]
) -> set[Stored]:
    """What the hub must store for these uplinks when decoded with `catalog`."""
    out: set[Stored] = set()
    for sim in sims:
        profile = catalog[sim.device.profile]
        data = decode.decode_uplink(profile, f_port=sim.f_port, payload=sim.payload).data
        norm = normalize.to_readings(
            data, profile.mappings, time=sim.time, dev_eui=sim.device.dev_eui
        )
        name = decode.decoder_name(profile)
        out |= {(r.dev_eui, r.metric, r.value, name) for r in norm.readings}
    return out


def stored(conn: psycopg.Connection) -> set[Stored]:
    """Every stored reading with its device's DevEUI and its decoder's name."""
    rows = conn.execute(
        """
        SELECT d.dev_eui, r.metric, r.value, dec.name
        FROM reading r JOIN device d ON d.id = r.device_id
        LEFT JOIN decoder dec ON dec.id = r.decoder_id
        """
    ).fetchall()
    return set(rows)
