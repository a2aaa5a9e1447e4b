"""Readings are stored once: `insert_readings` copies new ones and skips the ones already
stored, keeping the rest of the caller's transaction, on TimescaleDB and plain PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from test_rollups import register

from datahub.storage import readings, rollups
from datahub.storage.readings import ReadingRow

T0 = datetime(2024, 5, 1, 10, 7, tzinfo=UTC)


def stored(conn: psycopg.Connection) -> list[tuple[datetime, int, str, float]]:
    rows = conn.execute("SELECT time, device_id, metric, value FROM reading ORDER BY 1, 2, 3")
    return rows.fetchall()


def test_new_readings_are_stored_and_their_hours_marked(conn: psycopg.Connection) -> None:
    ids = register(conn, "0000000000000001")
    device = ids["0000000000000001"]
    rows = [ReadingRow(T0 + timedelta(hours=i), device, "co2", 400.0 + i) for i in range(3)]

    assert readings.insert_readings(conn, rows=rows) == 3

    assert stored(conn) == [(r.time, r.device_id, r.metric, r.value) for r in rows]
    assert rollups.count_dirty(conn) == 3


def test_readings_already_stored_are_skipped_in_the_same_transaction(
    conn: psycopg.Connection,
) -> None:
    ids = register(conn, "0000000000000001")
    device = ids["0000000000000001"]
    first = [ReadingRow(T0, device, "co2", 400.0), ReadingRow(T0, device, "temperature", 21.5)]
    assert readings.insert_readings(conn, rows=first) == 2

    # One reading stored before (with another value: the first one stays), one new, and one
    # new twice in the same call.
    again = [
        ReadingRow(T0, device, "co2", 999.0),
        ReadingRow(T0 + timedelta(minutes=15), device, "co2", 410.0),
        ReadingRow(T0 + timedelta(minutes=30), device, "co2", 420.0),
        ReadingRow(T0 + timedelta(minutes=30), device, "co2", 420.0),
    ]
    assert readings.insert_readings(conn, rows=again) == 2

    assert stored(conn) == [
        (T0, device, "co2", 400.0),
        (T0, device, "temperature", 21.5),
        (T0 + timedelta(minutes=15), device, "co2", 410.0),
        (T0 + timedelta(minutes=30), device, "co2", 420.0),
    ]
    # The transaction goes on: what it wrote before the skipped readings is still there.
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    assert conn.execute("SELECT count(*) FROM device").fetchone() == (1,)
