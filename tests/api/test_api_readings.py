"""GET /v1/devices/{dev_eui}/readings: raw series, ranges, pagination, CSV, errors."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from api_helpers import Seed, at, iso
from fastapi.testclient import TestClient

from datahub.api.schemas import ReadingPageOut

EUI = "70B3D57ED0000010"
PATH = f"/v1/devices/{EUI}/readings"


@pytest.fixture
def sensor(seed: Seed) -> Seed:
    """A climate sensor with temperature every 10 min and humidity every 20 min, 00:00-00:50."""
    seed.device(EUI)
    seed.readings(EUI, "temperature", {at(m): 20.0 + m / 10 for m in range(0, 60, 10)})
    seed.readings(EUI, "humidity", {at(m): 50.0 + m for m in range(0, 60, 20)})
    return seed


def window(start: float = 0, end: float = 60, **params: str | int) -> dict[str, str | int]:
    return {"from": iso(at(start)), "to": iso(at(end)), **params}


def test_one_metric_ascending_with_units(client: TestClient, sensor: Seed) -> None:
    response = client.get(PATH, params=window(10, 30, metric="temperature"))

    assert response.status_code == 200
    # Rendered without models: byte for byte what the documented model renders.
    body = response.json()
    model = ReadingPageOut.model_validate({**body, "start": body["from"], "end": body["to"]})
    assert response.content == model.model_dump_json(by_alias=True).encode()
    assert response.json() == {
        "dev_eui": EUI,
        "from": "2024-05-01T00:10:00Z",
        "to": "2024-05-01T00:30:00Z",
        "items": [
            {"time": "2024-05-01T00:10:00Z", "metric": "temperature", "value": 21.0, "unit": "°C"}
            | {"decoder": None},  # seeded without a decoder, as readings older than 0002
            {"time": "2024-05-01T00:20:00Z", "metric": "temperature", "value": 22.0, "unit": "°C"}
            | {"decoder": None},
        ],
        "next_cursor": None,
        "licences": [
            {
                "dataset": "dew21",
                "licence": "CC-BY-4.0",
                "name": "Creative Commons Attribution 4.0",
                "url": "https://creativecommons.org/licenses/by/4.0/",
                "attribution": "DEW21",
            }
        ],
    }


def test_every_metric_by_time_then_metric(client: TestClient, sensor: Seed) -> None:
    items = client.get(PATH, params=window(0, 25, limit=50)).json()["items"]

    assert [(i["time"], i["metric"], i["value"]) for i in items] == [
        ("2024-05-01T00:00:00Z", "humidity", 50.0),
        ("2024-05-01T00:00:00Z", "temperature", 20.0),
        ("2024-05-01T00:10:00Z", "temperature", 21.0),
        ("2024-05-01T00:20:00Z", "humidity", 70.0),
        ("2024-05-01T00:20:00Z", "temperature", 22.0),
    ]


def test_offsets_are_honoured_and_answers_are_utc(client: TestClient, sensor: Seed) -> None:
    params = {"from": "2024-05-01T02:40:00+02:00", "to": "2024-05-01T02:50:00+02:00"}

    items = client.get(PATH, params=params).json()["items"]

    assert [i["time"] for i in items] == ["2024-05-01T00:40:00Z", "2024-05-01T00:40:00Z"]


@pytest.mark.parametrize("limit", [1, 2, 3, 9])
def test_pages_cover_every_reading_once(client: TestClient, sensor: Seed, limit: int) -> None:
    seen: list[tuple[str, str]] = []
    params = window(limit=limit)
    while True:
        body = client.get(PATH, params=params).json()
        assert len(body["items"]) <= limit
        seen += [(i["time"], i["metric"]) for i in body["items"]]
        if body["next_cursor"] is None:
            break
        params = window(limit=limit, cursor=body["next_cursor"])

    assert len(seen) == 9
    assert seen == sorted(set(seen))


def test_default_range_is_the_last_24_hours(client: TestClient, seed: Seed) -> None:
    seed.device(EUI)
    now = datetime.now(UTC).replace(microsecond=0)
    seed.readings(EUI, "co2", {now - timedelta(hours=h): float(h) for h in (1, 23, 25)})

    body = client.get(PATH).json()

    assert [i["value"] for i in body["items"]] == [23.0, 1.0]


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_csv_by_format_parameter(client: TestClient, sensor: Seed) -> None:
    response = client.get(PATH, params=window(0, 15, format="csv"))

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv_rows(response.text) == [
        ["time", "metric", "value", "unit"],
        ["2024-05-01T00:00:00Z", "humidity", "50.0", "%"],
        ["2024-05-01T00:00:00Z", "temperature", "20.0", "°C"],
        ["2024-05-01T00:10:00Z", "temperature", "21.0", "°C"],
    ]
    # No next page; the licence travels in a Link header, as CSV has no place for it.
    assert set(response.links) == {"license"}
    assert response.links["license"]["url"] == "https://creativecommons.org/licenses/by/4.0/"
    assert response.links["license"]["title*"] == "UTF-8''DEW21"


def test_csv_pages_follow_the_link_header(client: TestClient, sensor: Seed) -> None:
    rows: list[list[str]] = []
    response = client.get(PATH, params=window(limit=4), headers={"Accept": "text/csv"})
    while True:
        assert response.headers["content-type"].startswith("text/csv")
        header, *page = csv_rows(response.text)
        assert header == ["time", "metric", "value", "unit"]
        rows += page
        if "next" not in response.links:
            break
        link = response.links["next"]["url"]
        assert link.startswith("http://testserver/v1/devices/")
        response = client.get(link, headers={"Accept": "text/csv"})

    assert len(rows) == 9
    assert len({(r[0], r[1]) for r in rows}) == 9


def test_json_when_accept_prefers_it(client: TestClient, sensor: Seed) -> None:
    response = client.get(PATH, params=window(), headers={"Accept": "application/json, text/csv"})

    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("params", "status", "detail_part"),
    [
        pytest.param(window(30, 10), 400, "must be before to", id="from-after-to"),
        pytest.param(window(10, 10), 400, "must be before to", id="empty-range"),
        pytest.param(window(0, 8 * 24 * 60), 400, "longer than 7 days", id="range-too-long"),
        pytest.param(window(metric="rain"), 400, "unknown metric 'rain'; known", id="metric"),
        pytest.param(window(cursor="%%%"), 400, "cursor is not valid", id="cursor-garbage"),
        pytest.param(window(cursor="WyJkIiwiQSJd"), 400, "cursor is not valid", id="device-cursor"),
        pytest.param(window(limit=51), 400, "maximum page size 50", id="limit-over-max"),
        pytest.param(window(format="xml"), 422, "'json' or 'csv'", id="format"),
        pytest.param(
            {"from": "2024-05-01T00:00:00"}, 422, "no UTC offset; add one", id="naive-time"
        ),
        pytest.param({"to": "yesterday"}, 422, "not an RFC 3339 time", id="unparseable-time"),
        pytest.param({"start": iso(at(0))}, 422, "'start' is not a parameter", id="unknown-param"),
    ],
)
def test_errors(
    client: TestClient, sensor: Seed, params: dict[str, str], status: int, detail_part: str
) -> None:
    response = client.get(PATH, params=params)

    assert response.status_code == status, response.text
    assert detail_part in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "status"),
    [("/v1/devices/70B3D57ED0009999/readings", 404), ("/v1/devices/xyz/readings", 400)],
)
def test_device_errors(client: TestClient, path: str, status: int) -> None:
    assert client.get(path).status_code == status
