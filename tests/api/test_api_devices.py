"""GET /v1/devices and /v1/devices/{dev_eui}: fields, filters, pagination, errors."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from api_helpers import API_LIMITS, Seed, at, build_app, iso
from fastapi.testclient import TestClient

from datahub.domain import City, Location


def test_get_device_shows_every_field(client: TestClient, seed: Seed) -> None:
    seed.device(
        "70B3D57ED0000001",
        name="Phoenix-See pier",
        profile="level",
        location=Location(51.4897, 7.5149),
    )
    seed.seen("70B3D57ED0000001", at(hours=10))

    response = client.get("/v1/devices/70b3d57ed0000001")

    assert response.status_code == 200
    assert response.json() == {
        "dev_eui": "70B3D57ED0000001",
        "name": "Phoenix-See pier",
        "city": "dortmund",
        "supplier": {"slug": "dew21", "name": "DEW21"},
        "dataset": "dew21",
        "profile": "level",
        "reporting_interval_s": 600,
        "location": {"latitude": 51.4897, "longitude": 7.5149},
        "last_seen": "2024-05-01T10:00:00Z",
        "metrics": ["temperature", "water_level"],
        "counters": [],
        "placement": None,
        "area": None,
        "privacy": "public_infrastructure",
    }


def test_device_without_location_or_known_profile(client: TestClient, seed: Seed) -> None:
    seed.device("70B3D57ED0000002", profile="retired-model")

    body = client.get("/v1/devices/70B3D57ED0000002").json()

    assert body["location"] is None
    assert body["last_seen"] is None
    assert body["metrics"] == []


@pytest.fixture
def fleet(seed: Seed) -> Seed:
    """Seven devices: five climate sensors in Dortmund, two level sensors in Schwerte."""
    for n in range(1, 6):
        seed.device(f"A0000000000000{n:02X}")
    for n in range(1, 3):
        seed.device(
            f"B0000000000000{n:02X}",
            city=City.SCHWERTE,
            supplier="stadtwerke-schwerte",
            profile="level",
        )
    return seed


def list_euis(client: TestClient, **params: str | int) -> list[str]:
    response = client.get("/v1/devices", params={"limit": 50, **params})
    assert response.status_code == 200, response.text
    return [item["dev_eui"] for item in response.json()["items"]]


ALL_DORTMUND = [f"A0000000000000{n:02X}" for n in range(1, 6)]
ALL_SCHWERTE = ["B000000000000001", "B000000000000002"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({}, ALL_DORTMUND + ALL_SCHWERTE, id="all"),
        pytest.param({"city": "schwerte"}, ALL_SCHWERTE, id="city"),
        pytest.param({"supplier": "dew21"}, ALL_DORTMUND, id="supplier"),
        pytest.param({"supplier": "nobody"}, [], id="unknown-supplier"),
        pytest.param({"metric": "water_level"}, ALL_SCHWERTE, id="metric-one-profile"),
        pytest.param({"metric": "temperature"}, ALL_DORTMUND + ALL_SCHWERTE, id="metric-both"),
        pytest.param({"metric": "co2", "city": "schwerte"}, [], id="metric-and-city"),
    ],
)
def test_list_filters(
    client: TestClient, fleet: Seed, params: dict[str, str], expected: list[str]
) -> None:
    assert list_euis(client, **params) == expected


def test_pages_cover_every_device_once(client: TestClient, fleet: Seed) -> None:
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 3}
    pages = 0
    while True:
        response = client.get("/v1/devices", params=params)
        body = response.json()
        seen += [item["dev_eui"] for item in body["items"]]
        pages += 1
        if body["next_cursor"] is None:
            assert "link" not in response.headers
            break
        assert response.headers["link"].endswith('>; rel="next"')
        params = {"limit": 3, "cursor": body["next_cursor"]}

    assert pages == 3
    assert seen == ALL_DORTMUND + ALL_SCHWERTE


def test_default_page_size_comes_from_settings(client: TestClient, fleet: Seed) -> None:
    body = client.get("/v1/devices").json()

    assert len(body["items"]) == 4  # api.page_size_default in these tests
    assert body["next_cursor"] is not None


def test_exact_last_page_has_no_cursor(client: TestClient, fleet: Seed) -> None:
    body = client.get("/v1/devices", params={"limit": 7}).json()

    assert len(body["items"]) == 7
    assert body["next_cursor"] is None


@pytest.mark.parametrize(
    ("path", "status", "error", "detail_part"),
    [
        ("/v1/devices/70B3D57ED000000", 400, "BadRequest", "16 hexadecimal digits"),
        ("/v1/devices/70B3D57ED000000G", 400, "BadRequest", "16 hexadecimal digits"),
        ("/v1/devices/70B3D57ED0009999", 404, "NotFound", "70B3D57ED0009999"),
        ("/v1/devices?cursor=not-a-cursor", 400, "BadRequest", "cursor"),
        ("/v1/devices?limit=51", 400, "BadRequest", "maximum page size 50"),
        ("/v1/devices?limit=0", 422, "ValidationError", "'limit'"),
        ("/v1/devices?metric=rainfall", 400, "BadRequest", "known metrics: co2, humidity"),
        ("/v1/devices?city=bochum", 422, "ValidationError", "'dortmund' or 'schwerte'"),
        ("/v1/devices?town=dortmund", 422, "ValidationError", "'town' is not a parameter"),
    ],
)
def test_errors(client: TestClient, path: str, status: int, error: str, detail_part: str) -> None:
    response = client.get(path)

    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert detail_part in body["detail"]


def test_readings_cursor_is_not_a_device_cursor(client: TestClient, fleet: Seed) -> None:
    seed = fleet
    seed.readings("A000000000000001", "co2", {at(0): 400.0, at(1): 410.0})
    readings = client.get(
        "/v1/devices/A000000000000001/readings",
        params={"from": iso(at(0)), "to": iso(at(5)), "limit": 1},
    ).json()

    response = client.get("/v1/devices", params={"cursor": readings["next_cursor"]})

    assert response.status_code == 400


def test_link_uses_the_public_base_url(
    database: Any, conn: psycopg.Connection, fleet: Seed
) -> None:
    api = {**API_LIMITS, "public_base_url": "https://data.example.org/"}
    client = TestClient(build_app(database.settings(api=api), conn))

    response = client.get("/v1/devices", params={"limit": 2, "city": "dortmund"})

    cursor = response.json()["next_cursor"]
    assert response.headers["link"] == (
        f'<https://data.example.org/v1/devices?limit=2&city=dortmund&cursor={cursor}>; rel="next"'
    )
