"""GET /v1/readings/aggregate?fn=delta: counter increases across resets and wrap-arounds."""

from __future__ import annotations

import psycopg
import pytest
from api_helpers import API_LIMITS, FakeMapping, FakeMetric, FakeProfile, Seed, at, build_app, iso
from fastapi.testclient import TestClient

from datahub.api.metric_index import MetricIndex
from datahub.domain import City

PATH = "/v1/readings/aggregate"
DOOR, GATE, ROOM = "C000000000000001", "C000000000000002", "C000000000000003"

CATALOG = MetricIndex.build(
    metrics={
        "people_in": FakeMetric("people_in", "1", "people in"),
        "temperature": FakeMetric("temperature", "Cel", "air temperature"),
    },
    profiles={
        # A 16-bit counter, which wraps at 65536; and one whose width is unknown.
        "door": FakeProfile((FakeMapping("in", "people_in", kind="counter", wrap=16),)),
        "gate": FakeProfile((FakeMapping("in", "people_in", kind="counter"),)),
        # The same metric reported as a gauge (say, people in the room now).
        "room": FakeProfile(
            (FakeMapping("in", "people_in"), FakeMapping("temperature", "temperature"))
        ),
    },
)


@pytest.fixture
def client(database: object, conn: psycopg.Connection) -> TestClient:
    return TestClient(build_app(database.settings(api=API_LIMITS), conn, catalog=CATALOG))  # type: ignore[attr-defined]


@pytest.fixture
def counters(seed: Seed) -> Seed:
    seed.device(DOOR, profile="door")
    seed.device(GATE, profile="gate")
    seed.device(ROOM, profile="room")
    # From near the top of 16 bits: a wrap-around at 10:40, then a reset at 11:40.
    seed.readings(
        DOOR,
        "people_in",
        {
            at(hours=9, minutes=50): 65500,  # before the range: the first increase's base
            at(hours=10, minutes=10): 65520,  # +20
            at(hours=10, minutes=40): 10,  # wrapped: 10 + 65536 - 65520 = +26
            at(hours=11, minutes=20): 30,  # +20
            at(hours=11, minutes=40): 5,  # reset (30 is far from the top): +5
            at(hours=12, minutes=10): 5,  # +0
        },
    )
    # The same drop without a known width is a reset.
    seed.readings(
        GATE, "people_in", {at(hours=10, minutes=10): 65520, at(hours=10, minutes=40): 10}
    )
    seed.readings(ROOM, "people_in", {at(hours=10, minutes=15): 4.0})
    seed.readings(ROOM, "temperature", {at(hours=10, minutes=15): 21.0})
    return seed


def delta(client: TestClient, **params: str) -> list[list[tuple[str, float, int]]]:
    query = {"metric": "people_in", "fn": "delta", "from": iso(at(hours=10))}
    response = client.get(PATH, params={**query, "to": iso(at(hours=13)), **params})
    assert response.status_code == 200, response.text
    return [
        [(p["time"][11:16], p["value"], p["count"]) for p in series["points"]]
        for series in response.json()["series"]
    ]


@pytest.mark.usefixtures("counters")
def test_increases_across_a_wrap_around_and_a_reset(client: TestClient) -> None:
    assert delta(client, device=DOOR) == [
        [("10:00", 46.0, 2), ("11:00", 25.0, 2), ("12:00", 0.0, 1)]
    ]


@pytest.mark.usefixtures("counters")
def test_a_drop_of_a_counter_without_a_width_is_a_reset(client: TestClient) -> None:
    # The first reading has no reading before it: it counts, but increases nothing.
    assert delta(client, device=GATE) == [[("10:00", 10.0, 2)]]


@pytest.mark.usefixtures("counters")
def test_city_series_sum_the_counters_and_leave_gauges_out(client: TestClient) -> None:
    assert delta(client, city=City.DORTMUND.value) == [
        [("10:00", 56.0, 4), ("11:00", 25.0, 2), ("12:00", 0.0, 1)]
    ]
    assert delta(client, city=City.DORTMUND.value, group="device", bucket="1d") == [
        [("00:00", 71.0, 5)],
        [("00:00", 10.0, 2)],
    ]


@pytest.mark.usefixtures("counters")
@pytest.mark.parametrize(
    ("params", "detail"),
    [
        pytest.param({"metric": "temperature", "device": ROOM}, "not a counter", id="gauge"),
        pytest.param({"metric": "temperature", "city": "dortmund"}, "not a counter", id="city"),
        pytest.param({"device": ROOM}, "not a counter of C000000000000003", id="gauge-profile"),
    ],
)
def test_delta_of_a_gauge_is_a_bad_request(
    client: TestClient, params: dict[str, str], detail: str
) -> None:
    query = {"metric": "people_in", "fn": "delta", "from": iso(at(hours=10))}
    response = client.get(PATH, params={**query, "to": iso(at(hours=13)), **params})
    assert response.status_code == 400
    assert response.json()["error"] == "BadRequest"
    assert detail in response.json()["detail"]
