"""The API refuses (410) what needs raw readings deleted by retention, naming it, and
answers aggregates of whole hours over the same range from the rollups."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from realservices import BACKENDS, Database, temporary_database
from retention_world import DAY, EUIS, NOW, START, keep, world

from datahub import retention
from datahub.storage.buckets import floor_to


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A database of this module alone: a retention run deletes what every dataset holds
    past it, so no other module's data may be there."""
    with temporary_database(
        request.param, f"datahub_test_api_retention_{request.param}"
    ) as database:
        yield database


def test_the_api_refuses_raw_readings_past_retention_and_answers_hours(
    conn: psycopg.Connection, client: TestClient
) -> None:
    world(conn)
    conn.execute("UPDATE dataset SET licence_class = 'open' WHERE slug = 'dew21'")
    keep(conn, 7)
    retention.run(conn, now=NOW)
    old = {"from": (START + DAY).isoformat(), "to": (START + 2 * DAY).isoformat()}

    raw = client.get(f"/v1/devices/{EUIS[0]}/readings", params=old)
    assert raw.status_code == 410, raw.text
    assert "keeps raw readings 7 days" in raw.json()["detail"]
    fine = client.get(
        "/v1/readings/aggregate",
        params={**old, "device": EUIS[0], "metric": "co2", "bucket": "15m"},
    )
    assert (fine.status_code, fine.json()["error"]) == (410, "Gone")
    off_hour = {**old, "from": (START + DAY + timedelta(minutes=10)).isoformat()}
    shifted = client.get(
        "/v1/readings/aggregate",
        params={**off_hour, "device": EUIS[0], "metric": "co2", "bucket": "1h"},
    )
    assert shifted.status_code == 410 and "on the hour" in shifted.json()["detail"]
    hourly = client.get(
        "/v1/readings/aggregate",
        params={**old, "device": EUIS[0], "metric": "co2", "bucket": "1h"},
    )
    assert hourly.status_code == 200
    assert len(hourly.json()["series"][0]["points"]) == 24
    day = floor_to(START + 2 * DAY, DAY)
    city = client.get(
        "/v1/readings/aggregate",
        params={
            "from": day.isoformat(),
            "to": (day + DAY).isoformat(),
            "city": "dortmund",
            "metric": "co2",
            "bucket": "1d",
        },
    )
    assert city.status_code == 200
    assert [p["count"] for p in city.json()["series"][0]["points"]] == [2 * 72]
    recent = {"from": (NOW - DAY).isoformat(), "to": NOW.isoformat()}
    assert client.get(f"/v1/devices/{EUIS[0]}/readings", params=recent).status_code == 200
