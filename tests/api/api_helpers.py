"""Helpers of the API tests: a device catalog of their own, times, and a seeding builder."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from app_on_conn import app_on_conn
from fastapi import FastAPI

from datahub.api.catalog import MetricCatalog
from datahub.config import Settings
from datahub.domain import City, Device, Location
from datahub.storage import devices, readings, suppliers
from datahub.storage.readings import ReadingRow
from datahub.storage.suppliers import SupplierRow

# The app's catalog in these tests: fixed here so that catalog changes don't move
# expected values. test_api_metrics.py checks the real catalog is what apps get by default.


@dataclass(frozen=True)
class FakeMetric:
    name: str
    unit: str
    description: str


@dataclass(frozen=True)
class FakeMapping:
    path: str
    metric: str
    kind: str = "gauge"
    scale: float = 1.0
    wrap: int | None = None
    decimals: int | None = None


@dataclass(frozen=True)
class FakeProfile:
    mappings: tuple[FakeMapping, ...]
    reporting_interval_s: int | None = 600


def _profile(*metrics: str) -> FakeProfile:
    return FakeProfile(tuple(FakeMapping(path=m, metric=m) for m in metrics))


TEST_CATALOG = MetricCatalog.build(
    metrics={
        "temperature": FakeMetric("temperature", "°C", "air temperature"),
        "humidity": FakeMetric("humidity", "%", "relative humidity"),
        "co2": FakeMetric("co2", "ppm", "CO2 concentration"),
        "water_level": FakeMetric("water_level", "m", "water level above gauge zero"),
    },
    profiles={
        "climate": _profile("temperature", "humidity", "co2"),
        "level": _profile("water_level", "temperature"),
    },
)

# Small limits, so pagination and range checks are exercised with a few rows.
API_LIMITS = {
    "page_size_default": 4,
    "page_size_max": 50,
    "max_buckets": 100,
    "max_raw_range_days": 7,
}

T0 = datetime(2024, 5, 1, tzinfo=UTC)


# A profile whose formulas leave binary noise (7.154999999999999), with the resolutions
# its values are rendered at.
NOISY = MetricCatalog.build(
    metrics={
        "temperature": FakeMetric("temperature", "Cel", "air temperature"),
        "battery_voltage": FakeMetric("battery_voltage", "V", "battery voltage"),
    },
    profiles={
        "sensor": FakeProfile(
            (
                FakeMapping("t", "temperature", decimals=3),
                FakeMapping("v", "battery_voltage", decimals=2),
            )
        )
    },
)


def at(minutes: float = 0, *, hours: float = 0, days: float = 0) -> datetime:
    """Return a time relative to T0 (2024-05-01T00:00Z)."""
    return T0 + timedelta(days=days, hours=hours, minutes=minutes)


def iso(value: datetime) -> str:
    """Render a time as the API renders it: RFC 3339 UTC with a Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Seed:
    """Builds registry and readings through the storage write functions."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.ids: dict[str, int] = {}
        self.supplier_ids = suppliers.upsert_suppliers(
            conn,
            suppliers=[SupplierRow("dew21", "DEW21"), SupplierRow("stadtwerke-schwerte", "SWS")],
        )
        # The suppliers' own datasets are restricted until opened; these tests read them
        # anonymously, as open data. tests/api/test_api_access.py covers the other classes.
        conn.execute(
            """
            UPDATE dataset SET licence_class = 'open', licence_id = 'CC-BY-4.0',
                licence_name = 'Creative Commons Attribution 4.0',
                licence_url = 'https://creativecommons.org/licenses/by/4.0/'
            WHERE slug = ANY(%s)
            """,
            (list(self.supplier_ids),),
        )

    def device(
        self,
        dev_eui: str,
        *,
        city: City = City.DORTMUND,
        supplier: str = "dew21",
        profile: str = "climate",
        name: str | None = None,
        location: Location | None = None,
        dataset: str | None = None,
    ) -> str:
        """Register a device; return its DevEUI."""
        device = Device(
            dev_eui=dev_eui,
            name=name or f"sensor {dev_eui[-4:]}",
            city=city,
            supplier=supplier,
            profile=profile,
            location=location,
            dataset=dataset,
        )
        devices.upsert_devices(self.conn, devices=[device], supplier_ids=self.supplier_ids)
        self.ids = {eui: e.device_id for eui, e in devices.select_registry(self.conn).items()}
        return dev_eui

    def readings(self, dev_eui: str, metric: str, points: dict[datetime, float]) -> None:
        """Store one device's readings of one metric."""
        rows = [ReadingRow(t, self.ids[dev_eui], metric, v) for t, v in points.items()]
        readings.insert_readings(self.conn, rows=rows)

    def seen(self, dev_eui: str, when: datetime) -> None:
        devices.mark_seen(self.conn, last_seen={self.ids[dev_eui]: when})


def build_app(
    settings: Settings, conn: psycopg.Connection, catalog: MetricCatalog = TEST_CATALOG
) -> FastAPI:
    """Build the app on the test catalog and `conn` (app_on_conn.py)."""
    return app_on_conn(settings, conn, catalog)
