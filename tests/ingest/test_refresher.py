"""The ingest's rollup refresher clears every mark in batches, and one refresher works at a
time across the ingest workers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from realservices import Database

from datahub.domain import City, Device
from datahub.ingest import refresher
from datahub.ingest.refresher import Refresher
from datahub.storage import devices, readings, rollups, suppliers
from datahub.storage.buckets import AggregateFn, CityScope
from datahub.storage.readings import ReadingRow
from datahub.storage.suppliers import SupplierRow

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def hours_of_readings(conn: psycopg.Connection, hours: int) -> None:
    ids = suppliers.upsert_suppliers(conn, suppliers=[SupplierRow("dew21", "DEW21")])
    device = Device("0000000000000001", "sensor", City.DORTMUND, "dew21", "climate")
    devices.upsert_devices(conn, devices=[device], supplier_ids=ids)
    device_id = devices.select_registry(conn)["0000000000000001"].device_id
    rows = [ReadingRow(T0 + timedelta(hours=h), device_id, "co2", float(h)) for h in range(hours)]
    readings.insert_readings(conn, rows=rows)


def test_the_refresher_clears_every_mark_in_batches(
    conn: psycopg.Connection, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refresher, "BATCH", 4)
    hours_of_readings(conn, 10)
    assert rollups.count_dirty(conn) == 10
    worker = Refresher(database.settings(), stop_event=threading.Event())
    assert worker.refresh_all(conn) == 10
    assert rollups.count_dirty(conn) == 0
    got = readings.select_buckets(
        conn,
        scope=CityScope("dortmund", per_device=True),
        metric="co2",
        start=T0,
        end=T0 + timedelta(days=1),
        width=timedelta(days=1),
        fn=AggregateFn.SUM,
    )
    assert [(r.value, r.count) for r in got] == [(45.0, 10)]


def test_a_refresher_leaves_the_marks_to_the_one_holding_the_lock(
    conn: psycopg.Connection, database: Database
) -> None:
    hours_of_readings(conn, 3)
    with psycopg.connect(database.url) as other:
        other.execute("SELECT pg_advisory_xact_lock(%s)", (rollups.REFRESH_LOCK,))
        worker = Refresher(database.settings(), stop_event=threading.Event())
        assert worker.refresh_all(conn) == 0
        assert rollups.count_dirty(conn) == 3
        other.rollback()
    assert worker.refresh_all(conn) == 3
