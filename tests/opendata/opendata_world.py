"""The open-data tests' world: the demo's registry and fair-share seed, with readings.

Every device of the demo scenario is registered as `datahub devices import` would, the
demo seed (deploy/fairshare-demo.yaml) makes its datasets, licences and catalogue metadata,
and chosen devices get readings: a few days of the street climate sensors (open), a people
counter's running total (open), waste bins' distances and parking bays' states (datasets
that are not open but have public summaries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from app_on_conn import app_on_conn
from democatalog import demo_catalog
from fastapi import FastAPI

import decoders
import simulators
from datahub.api.metric_index import MetricIndex
from datahub.config import Settings
from datahub.fairshare import seed
from datahub.storage import devices, readings, rollups, suppliers
from datahub.storage.readings import ReadingRow
from datahub.storage.suppliers import SupplierRow

DEMO_SEED = Path(__file__).resolve().parents[2] / "deploy" / "fairshare-demo.yaml"
# Whole UTC days of readings end at this midnight; "now" is a little after it.
DAY0 = datetime(2026, 11, 28, tzinfo=UTC)
DAYS = 3
NOW = DAY0 + timedelta(days=DAYS, hours=3)
STEP = timedelta(minutes=30)

# The public address the catalogue's and the bulk files' URLs are built on.
BASE_URL = "https://daten.example.org"


@dataclass
class World:
    """What was seeded: device ids by DevEUI and the readings written, per device."""

    ids: dict[str, int] = field(default_factory=dict)
    written: dict[str, list[ReadingRow]] = field(default_factory=dict)

    def device_ids(self, prefix: str) -> list[str]:
        return sorted(eui for eui in self.ids if eui.startswith(prefix))


def metric_index() -> MetricIndex:
    """The demo's device catalog as the API sees it."""
    return MetricIndex.build(decoders.METRICS, demo_catalog())


def build_world(conn: psycopg.Connection) -> World:
    """Register the demo fleets, apply the demo seed and store readings; the caller commits."""
    scenario = simulators.load_scenario()
    rows = simulators.registry_rows(scenario)
    supplier_ids = suppliers.upsert_suppliers(
        conn,
        suppliers=list(
            {
                r["supplier"]: SupplierRow(r["supplier"], r["supplier_name"], r["supplier_kind"])
                for r in rows
            }.values()
        ),
    )
    devices.upsert_devices(
        conn, devices=[d.to_device() for d in scenario.devices()], supplier_ids=supplier_ids
    )
    seed.apply_seed(conn, seed.load_seed(DEMO_SEED), now=DAY0, actor="cli:test")
    world = World(ids={eui: e.device_id for eui, e in devices.select_registry(conn).items()})
    stored: list[ReadingRow] = []
    for eui in world.device_ids("A84041000A")[:3]:  # street climate, Dortmund, open
        stored += _series(world, eui, "temperature", lambda i: 8.0 + (i % 48) / 4)
        stored += _series(world, eui, "relative_humidity", lambda i: 70.0 + (i % 7))
    counter = world.device_ids("24E1247130")[0]  # people counter, Dortmund, open
    stored += _series(world, counter, "people_in", lambda i: 1_400_000.0 + 37 * i + i * i % 11)
    readings.insert_readings(conn, rows=stored)
    rollups.rebuild(conn, start=DAY0, end=DAY0 + timedelta(days=DAYS))
    return world


def _series(world: World, eui: str, metric: str, value: object) -> list[ReadingRow]:
    assert callable(value)
    rows = [
        ReadingRow(DAY0 + i * STEP, world.ids[eui], metric, float(value(i)))
        for i in range(int(timedelta(days=DAYS) / STEP))
    ]
    world.written.setdefault(eui, []).extend(rows)
    return rows


def build_app(settings: Settings, conn: psycopg.Connection) -> FastAPI:
    """The API on the demo catalog and `conn` (app_on_conn.py)."""
    return app_on_conn(settings, conn, metric_index())
