"""Retention deletes raw readings and uplinks past their dataset's retention and keeps the
rollups: aggregates of whole hours over the removed range keep their values. On
TimescaleDB (whole chunks) and plain PostgreSQL (rows in batches)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from realservices import BACKENDS, Database, temporary_database
from retention_world import DAY, EUIS, HOUR, NOW, START, aggregates, keep, world

from datahub import retention
from datahub.errors import BadRequest
from datahub.fairshare import admin
from datahub.storage import audit as audit_log
from datahub.storage import db, readings, rollups
from datahub.storage.buckets import AggregateFn, DeviceScope
from datahub.storage.datasets import DatasetGovernance
from datahub.storage.readings import ReadingRow


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A database of this module alone: a retention run deletes what every dataset holds
    past it, so no other module's data may be there."""
    with temporary_database(request.param, f"datahub_test_retention_{request.param}") as database:
        yield database


def test_aggregates_over_the_removed_range_stay_as_they_were(conn: psycopg.Connection) -> None:
    ids = world(conn)
    before = aggregates(conn, ids)
    keep(conn, 7)

    report = retention.run(conn, now=NOW, batch=1000)

    cutoff = NOW - 7 * DAY
    left = conn.execute(
        "SELECT min(time), count(*) FROM reading WHERE device_id = ANY(%s)", (list(ids.values()),)
    ).fetchone()
    assert left is not None and left[0] >= cutoff - 7 * DAY  # chunks end on their boundary
    kept = conn.execute(
        "SELECT count(*) FROM reading WHERE device_id = ANY(%s) AND time < %s",
        (list(ids.values()), cutoff),
    ).fetchone()
    assert kept == (0,)
    assert left[1] == 2 * 7 * 72
    if db.has_timescaledb(conn):
        assert report.chunks_dropped.get("reading", 0) >= 1
    else:
        assert report.readings["dew21"] == 2 * 23 * 72
    assert aggregates(conn, ids) == before


def test_a_reading_waiting_for_the_refresher_is_kept_until_rolled_up(
    conn: psycopg.Connection,
) -> None:
    ids = world(conn)
    late = ReadingRow(START + timedelta(minutes=5), ids[EUIS[1]], "co2", 999.0)
    readings.insert_readings(conn, rows=[late])  # marks its hour
    keep(conn, 7)
    retention.run(conn, now=NOW)
    assert conn.execute("SELECT count(*) FROM reading WHERE value = 999").fetchone() == (1,)
    while rollups.refresh(conn):
        pass
    retention.run(conn, now=NOW)
    assert conn.execute(
        "SELECT count(*) FROM reading WHERE time < %s", (NOW - 7 * DAY,)
    ).fetchone() == (0,)
    hours = readings.select_buckets(
        conn, scope=DeviceScope(ids[EUIS[1]]), metric="co2", start=START, end=START + HOUR,
        width=HOUR, fn=AggregateFn.MAX,
    )  # fmt: skip
    assert [r.value for r in hours] == [999.0]


def test_retention_is_set_by_an_administrator_and_audited(conn: psycopg.Connection) -> None:
    world(conn)
    record, changed = admin.update_dataset(
        conn,
        slug="dew21",
        changes={"reading_retention_days": 90, "legal_basis": " Art. 6(1)(e) GDPR "},
        now=NOW,
        actor="cli:test",
    )
    assert changed and record.governance == DatasetGovernance(None, 90, "Art. 6(1)(e) GDPR")
    (entry,) = audit_log.list_entries(conn, limit=1, newest_first=True)
    assert (entry.action, entry.before["governance"], entry.after["governance"]) == (
        "dataset.update",
        {"uplink_retention_days": None, "reading_retention_days": None, "legal_basis": None},
        {"uplink_retention_days": None, "reading_retention_days": 90,
         "legal_basis": "Art. 6(1)(e) GDPR"},
    )  # fmt: skip
    with pytest.raises(BadRequest, match="none keeps raw data for ever"):
        admin.update_dataset(
            conn, slug="dew21", changes={"uplink_retention_days": 0}, now=NOW, actor="cli:test"
        )
