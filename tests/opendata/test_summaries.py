"""Open summaries of the demo's waste bins and parking bays: per district, k or more devices."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from opendata_world import World

import simulators
from datahub.storage import readings
from datahub.storage.readings import ReadingRow

K = 5
HOUR = timedelta(hours=1)


def bin_distance(index: int) -> float:
    """Every third bin is nearly full (200 mm below the sensor: 95 %), the others not."""
    return 200.0 if index % 3 == 0 else 900.0


def occupied(bay: int, step: int) -> float:
    return 1.0 if (bay + step) % 4 == 0 else 0.0


def areas(prefix: str) -> dict[str, str | None]:
    """DevEUI -> area, as the demo scenario (and so the registry) says."""
    return {
        d.dev_eui: d.area
        for d in simulators.load_scenario().devices()
        if d.dev_eui.startswith(prefix)
    }


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def test_waste_bins_per_district_and_the_share_above_80_percent(
    client: TestClient, conn: psycopg.Connection, world: World, now: datetime
) -> None:
    bins = areas("A8404100F1")  # EDG's bins in Dortmund: a commercial dataset
    rows = []
    for index, eui in enumerate(sorted(bins)):
        rows.append(ReadingRow(now - timedelta(minutes=20), world.ids[eui], "distance", 1000.0))
        rows.append(
            ReadingRow(now - timedelta(minutes=5), world.ids[eui], "distance", bin_distance(index))
        )
    stale = sorted(bins)[0]  # its newest reading is older than a day: not counted now
    rows = [r for r in rows if r.device_id != world.ids[stale]]
    rows.append(ReadingRow(now - timedelta(hours=30), world.ids[stale], "distance", 200.0))
    readings.insert_readings(conn, rows=rows)

    body = client.get("/v1/summaries/waste", params={"city": "dortmund"}).json()

    expected: dict[str, list[bool]] = defaultdict(list)
    for index, eui in enumerate(sorted(bins)):
        if eui != stale:
            expected[bins[eui] or ""].append(bin_distance(index) < 1100 - 0.8 * 950)
    cells = {c["area"]: c for c in body["cells"]}
    assert set(cells) == set(expected)
    for area, full in expected.items():
        if len(full) >= K:
            assert cells[area] == {
                "city": "dortmund",
                "area": area,
                "bins": len(full),
                "full_share": round(sum(full) / len(full), 3),
                "shown": True,
            }
        else:
            assert cells[area] == {
                "city": "dortmund",
                "area": area,
                "bins": None,
                "full_share": None,
                "shown": False,
            }
    assert not cells["Eving"]["shown"]  # 3 bins
    assert cells["Innenstadt-West"]["bins"] == 11  # 12, less the stale one
    assert [lic["dataset"] for lic in body["licences"]] == ["edg-fuellstand"]
    usage = conn.execute(
        """
        SELECT u.consumer_id, u.purpose, ds.slug, u.observations FROM usage u
        JOIN dataset ds ON ds.id = u.dataset_id WHERE u.endpoint = '/v1/summaries/waste'
        """
    ).fetchall()
    assert usage == [(None, "public_interest", "edg-fuellstand", len(bins) - 1)]


def test_free_parking_bays_per_zone_now_and_over_the_day(
    client: TestClient, conn: psycopg.Connection, world: World, now: datetime
) -> None:
    bays = areas("70B3D5C0A0")  # Dortmund's bays: a restricted dataset with open summaries
    hour0 = now.replace(minute=0, second=0) - 23 * HOUR
    rows = []
    for bay, eui in enumerate(sorted(bays)):
        for step in range(48):
            time = hour0 + step * timedelta(minutes=30)
            if time <= now - timedelta(minutes=1):
                rows.append(ReadingRow(time, world.ids[eui], "occupancy", occupied(bay, step)))
    readings.insert_readings(conn, rows=rows)

    body = client.get("/v1/summaries/parking").json()

    zones: dict[str, list[int]] = defaultdict(list)
    for bay, eui in enumerate(sorted(bays)):
        zones[bays[eui] or ""].append(bay)
    cells = {c["area"]: c for c in body["cells"]}
    assert set(cells) == set(zones)
    assert not cells["Klinikviertel"]["shown"]  # 4 bays
    assert cells["Klinikviertel"]["hours"] == [] and cells["Klinikviertel"]["free"] is None
    for zone, members in zones.items():
        if len(members) < K:
            continue
        cell = cells[zone]
        last = max(r.time for r in rows)
        steps = {r.time: i for i, r in enumerate(rows[:48])}
        now_free = sum(occupied(b, steps[last]) == 0 for b in members)
        assert (cell["bays"], cell["free"], cell["shown"]) == (len(members), now_free, True)
        expected_hours = []
        for hour in range(24):
            start = hour0 + hour * HOUR
            free = 0.0
            reported = 0
            for b in members:
                states = [
                    occupied(b, s)
                    for s in range(48)
                    if start <= hour0 + s * timedelta(minutes=30) < start + HOUR
                    and hour0 + s * timedelta(minutes=30) <= now - timedelta(minutes=1)
                ]
                if states:
                    reported += 1
                    free += 1 - sum(states) / len(states)
            if reported >= K:
                expected_hours.append((start, reported, round(free, 1)))
        assert [
            (datetime.fromisoformat(h["time"]), h["bays"], h["free"]) for h in cell["hours"]
        ] == expected_hours
