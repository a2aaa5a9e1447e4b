"""A world for the retention tests: two devices with 30 days of readings, rolled up."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import psycopg

from datahub.domain import City, Device
from datahub.storage import datasets, devices, readings, rollups, suppliers
from datahub.storage.buckets import AggregateFn, CityScope, DeviceScope, floor_to
from datahub.storage.datasets import DatasetGovernance
from datahub.storage.readings import ReadingRow
from datahub.storage.suppliers import SupplierRow

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NOW = floor_to(datetime.now(UTC), HOUR)
START = NOW - 30 * DAY  # the readings span 30 days; 7 of them are kept
EUIS = ("70B3D57E0000A001", "70B3D57E0000A002")
FNS = [AggregateFn.AVG, AggregateFn.MIN, AggregateFn.MAX, AggregateFn.SUM, AggregateFn.COUNT]


def world(conn: psycopg.Connection) -> dict[str, int]:
    """Two devices with a reading every 20 minutes for 30 days, rolled up."""
    ids = suppliers.upsert_suppliers(conn, suppliers=[SupplierRow("dew21", "DEW21")])
    fleet = [Device(e, e, City.DORTMUND, "dew21", "climate") for e in EUIS]
    devices.upsert_devices(conn, devices=fleet, supplier_ids=ids)
    found = {e: entry.device_id for e, entry in devices.select_registry(conn).items()}
    rows = [
        ReadingRow(START + i * timedelta(minutes=20), found[e], "co2", 400 + 100 * math.sin(i / 7))
        for e in EUIS
        for i in range(30 * 72)
    ]
    readings.insert_readings(conn, rows=rows)
    while rollups.refresh(conn):
        pass
    return found


def aggregates(conn: psycopg.Connection, ids: dict[str, int]) -> dict[str, object]:
    """Hourly and daily series of each function, per device and city-wide."""
    out: dict[str, object] = {}
    for fn in [*FNS, AggregateFn.LAST]:
        for width in (HOUR, DAY):
            for name, scope in (
                ("device", DeviceScope(ids[EUIS[0]])),
                ("city", CityScope(City.DORTMUND, per_device=False, dataset_ids=None)),
            ):
                rows = readings.select_buckets(
                    conn, scope=scope, metric="co2", start=START, end=NOW, width=width, fn=fn
                )
                out[f"{name} {fn.value} {width}"] = [
                    (r.time, round(r.value, 9), r.count) for r in rows
                ]
    return out


def keep(conn: psycopg.Connection, days: int) -> None:
    """Keep every dataset's raw readings and uplinks `days` days (all: chunks may go)."""
    for record in datasets.list_datasets(conn):
        datasets.update_governance(
            conn,
            dataset_id=record.id,
            governance=DatasetGovernance(uplink_retention_days=days, reading_retention_days=days),
        )
