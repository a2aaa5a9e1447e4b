"""GET /v1/latest: the newest value of each device and profile metric."""

from __future__ import annotations

import csv
import io

import pytest
from api_helpers import Seed, at
from fastapi.testclient import TestClient

from datahub.api.schemas import LatestListOut
from datahub.domain import City

D1, D2, S1 = "D000000000000001", "D000000000000002", "5000000000000001"


@pytest.fixture
def fleet(seed: Seed) -> Seed:
    seed.device(D1, name="Westfalenpark")
    seed.device(D2, name="Hafen")
    seed.device(
        S1, name="Ruhr gauge", city=City.SCHWERTE, supplier="stadtwerke-schwerte", profile="level"
    )
    seed.readings(D1, "temperature", {at(hours=10): 10.0, at(hours=11): 11.0})
    seed.readings(D1, "humidity", {at(hours=10, minutes=30): 50.0})
    seed.readings(D1, "water_level", {at(hours=12): 9.0})  # not a metric of its profile
    seed.readings(D2, "temperature", {at(hours=9): 7.0})
    seed.readings(S1, "water_level", {at(hours=8): 1.5, at(hours=9): 1.6})
    seed.readings(S1, "temperature", {at(hours=9, minutes=30): 12.0})
    return seed


def rows(client: TestClient, **params: str) -> list[tuple[str, str, float]]:
    response = client.get("/v1/latest", params=params)
    assert response.status_code == 200, response.text
    return [(i["dev_eui"], i["metric"], i["value"]) for i in response.json()["items"]]


def test_every_device_and_metric(client: TestClient, fleet: Seed) -> None:
    items = client.get("/v1/latest").json()["items"]

    assert items[0] == {
        "dev_eui": S1,
        "name": "Ruhr gauge",
        "city": "schwerte",
        "metric": "temperature",
        "unit": "°C",
        "time": "2024-05-01T09:30:00Z",
        "value": 12.0,
    }
    assert [(i["dev_eui"], i["metric"], i["time"][11:16], i["value"]) for i in items] == [
        (S1, "temperature", "09:30", 12.0),
        (S1, "water_level", "09:00", 1.6),
        (D1, "humidity", "10:30", 50.0),
        (D1, "temperature", "11:00", 11.0),
        (D2, "temperature", "09:00", 7.0),
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param(
            {"city": "schwerte"}, [(S1, "temperature", 12.0), (S1, "water_level", 1.6)], id="city"
        ),
        pytest.param(
            {"metric": "temperature"},
            [(S1, "temperature", 12.0), (D1, "temperature", 11.0), (D2, "temperature", 7.0)],
            id="metric",
        ),
        pytest.param({"metric": "water_level"}, [(S1, "water_level", 1.6)], id="profile-metric"),
        pytest.param(
            {"supplier": "dew21", "metric": "humidity"}, [(D1, "humidity", 50.0)], id="supplier"
        ),
        pytest.param({"metric": "co2"}, [], id="no-readings"),
    ],
)
def test_filters(
    client: TestClient, fleet: Seed, params: dict[str, str], expected: list[tuple[str, str, float]]
) -> None:
    assert rows(client, **params) == expected


def test_csv(client: TestClient, fleet: Seed) -> None:
    response = client.get("/v1/latest", params={"city": "schwerte"}, headers={"Accept": "text/csv"})

    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert list(csv.reader(io.StringIO(response.text))) == [
        ["dev_eui", "name", "city", "metric", "unit", "time", "value"],
        [S1, "Ruhr gauge", "schwerte", "temperature", "°C", "2024-05-01T09:30:00Z", "12.0"],
        [S1, "Ruhr gauge", "schwerte", "water_level", "m", "2024-05-01T09:00:00Z", "1.6"],
    ]


@pytest.mark.parametrize(
    ("params", "status", "detail_part"),
    [
        ({"metric": "rain"}, 400, "known metrics: co2, humidity, temperature, water_level"),
        ({"city": "bochum"}, 422, "'dortmund' or 'schwerte'"),
        ({"format": "pdf"}, 422, "'json' or 'csv'"),
    ],
)
def test_errors(client: TestClient, params: dict[str, str], status: int, detail_part: str) -> None:
    response = client.get("/v1/latest", params=params)

    assert response.status_code == status
    assert detail_part in response.json()["detail"]


@pytest.mark.parametrize("params", [{}, {"city": "schwerte"}, {"metric": "humidity"}])
def test_the_body_is_what_the_response_model_renders(
    client: TestClient, fleet: Seed, params: dict[str, str]
) -> None:
    # Values are rendered without a model each: byte for byte what the model would render.
    response = client.get("/v1/latest", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    model = LatestListOut.model_validate_json(response.content)
    assert model.items and model.licences
    assert response.content == model.model_dump_json(by_alias=True).encode()
