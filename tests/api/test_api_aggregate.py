"""GET /v1/readings/aggregate: every function, bucket boundaries, device and city series."""

from __future__ import annotations

import csv
import io

import pytest
from api_helpers import Seed, at, iso
from fastapi.testclient import TestClient

from datahub.api.schemas import AggregateOut
from datahub.domain import City

PATH = "/v1/readings/aggregate"
D1, D2, S1 = "D000000000000001", "D000000000000002", "5000000000000001"


@pytest.fixture
def city_data(seed: Seed) -> Seed:
    """Temperatures of two Dortmund devices and one in Schwerte, on 2024-05-01 UTC."""
    seed.device(D1)
    seed.device(D2)
    seed.device(S1, city=City.SCHWERTE, supplier="stadtwerke-schwerte", profile="level")
    seed.readings(
        D1,
        "temperature",
        {
            at(hours=10): 10.0,  # a bucket's start belongs to the bucket
            at(hours=10, minutes=30): 20.0,
            at(hours=11, minutes=-1 / 60): 30.0,  # 10:59:59, the 10:00 bucket's last
            at(hours=11): 40.0,
            at(hours=13, minutes=15): 50.0,
        },
    )
    seed.readings(D1, "humidity", {at(hours=10, minutes=5): 77.0})
    seed.readings(D2, "temperature", {at(hours=10, minutes=15): 1.0, at(hours=11, minutes=45): 3.0})
    seed.readings(S1, "temperature", {at(hours=10, minutes=10): 100.0})
    return seed


def aggregate(client: TestClient, **params: str) -> dict:  # type: ignore[type-arg]
    query = {"metric": "temperature", "from": iso(at(hours=10)), "to": iso(at(hours=14))}
    response = client.get(PATH, params={**query, **params})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def points(series: dict) -> list[tuple[str, float, int]]:  # type: ignore[type-arg]
    return [(p["time"][11:16], p["value"], p["count"]) for p in series["points"]]


@pytest.mark.parametrize(
    ("fn", "values"),
    [
        ("avg", [20.0, 40.0, 50.0]),
        ("min", [10.0, 40.0, 50.0]),
        ("max", [30.0, 40.0, 50.0]),
        ("sum", [60.0, 40.0, 50.0]),
        ("count", [3.0, 1.0, 1.0]),
        ("last", [30.0, 40.0, 50.0]),
    ],
)
def test_device_series_per_function(
    client: TestClient, city_data: Seed, fn: str, values: list[float]
) -> None:
    body = aggregate(client, device=D1.lower(), fn=fn, bucket="1h")

    assert {k: v for k, v in body.items() if k not in ("series", "licences")} == {
        "metric": "temperature",
        "unit": "°C",
        "bucket": "1h",
        "fn": fn,
        "from": "2024-05-01T10:00:00Z",
        "to": "2024-05-01T14:00:00Z",
    }
    [series] = body["series"]
    assert (series["device"], series["city"]) == (D1, "dortmund")
    assert points(series) == list(zip(["10:00", "11:00", "13:00"], values, [3, 1, 1], strict=True))


@pytest.mark.parametrize(
    ("bucket", "expected"),
    [
        (
            "15m",
            [
                ("10:00", 10.0, 1),
                ("10:30", 20.0, 1),
                ("10:45", 30.0, 1),
                ("11:00", 40.0, 1),
                ("13:15", 50.0, 1),
            ],
        ),
        ("1d", [("00:00", 150.0, 5)]),
    ],
)
def test_bucket_boundaries(
    client: TestClient, city_data: Seed, bucket: str, expected: list[tuple[str, float, int]]
) -> None:
    [series] = aggregate(client, device=D1, fn="sum", bucket=bucket)["series"]

    assert points(series) == expected


def test_day_buckets_start_at_midnight_utc(client: TestClient, city_data: Seed) -> None:
    city_data.readings(D1, "temperature", {at(hours=-1): 5.0})  # 2024-04-30T23:00Z

    body = aggregate(client, device=D1, fn="count", bucket="1d", **{"from": iso(at(days=-1))})

    assert [(p["time"], p["count"]) for p in body["series"][0]["points"]] == [
        ("2024-04-30T00:00:00Z", 1),
        ("2024-05-01T00:00:00Z", 5),
    ]


def test_range_is_half_open_and_clips_buckets(client: TestClient, city_data: Seed) -> None:
    params = {"from": iso(at(hours=10, minutes=30)), "to": iso(at(hours=11))}

    [series] = aggregate(client, device=D1, fn="sum", **params)["series"]

    assert points(series) == [("10:00", 50.0, 2)]


@pytest.mark.parametrize(
    ("fn", "values"),
    [
        ("avg", [15.25, 21.5, 50.0]),
        ("min", [1.0, 3.0, 50.0]),
        ("max", [30.0, 40.0, 50.0]),
        ("sum", [61.0, 43.0, 50.0]),
        ("count", [4.0, 2.0, 1.0]),
        ("last", [30.0, 3.0, 50.0]),
    ],
)
def test_city_wide_series(
    client: TestClient, city_data: Seed, fn: str, values: list[float]
) -> None:
    body = aggregate(client, city="dortmund", fn=fn)

    [series] = body["series"]
    assert (series["device"], series["city"]) == (None, "dortmund")
    assert points(series) == list(zip(["10:00", "11:00", "13:00"], values, [4, 2, 1], strict=True))


def test_city_series_per_device(client: TestClient, city_data: Seed) -> None:
    body = aggregate(client, city="dortmund", group="device", fn="max")

    assert [(s["device"], s["city"], points(s)) for s in body["series"]] == [
        (D1, "dortmund", [("10:00", 30.0, 3), ("11:00", 40.0, 1), ("13:00", 50.0, 1)]),
        (D2, "dortmund", [("10:00", 1.0, 1), ("11:00", 3.0, 1)]),
    ]


@pytest.mark.parametrize(
    "params",
    [{"device": D2, "metric": "co2"}, {"city": "schwerte", "metric": "co2"}],
    ids=["device", "city"],
)
def test_no_readings_give_an_empty_series(
    client: TestClient, city_data: Seed, params: dict[str, str]
) -> None:
    [series] = aggregate(client, **params)["series"]

    assert series["points"] == []


def test_no_readings_per_device_give_no_series(client: TestClient, city_data: Seed) -> None:
    assert aggregate(client, city="schwerte", group="device", metric="co2")["series"] == []


def test_csv(client: TestClient, city_data: Seed) -> None:
    response = client.get(
        PATH,
        params={
            "metric": "temperature",
            "city": "dortmund",
            "group": "device",
            "from": iso(at(hours=10)),
            "to": iso(at(hours=11)),
            "format": "csv",
        },
    )

    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert list(csv.reader(io.StringIO(response.text))) == [
        ["device", "city", "time", "value", "count"],
        [D1, "dortmund", "2024-05-01T10:00:00Z", "20.0", "3"],
        [D2, "dortmund", "2024-05-01T10:00:00Z", "1.0", "1"],
    ]


@pytest.mark.parametrize(
    ("params", "status", "detail_part"),
    [
        pytest.param(
            {"bucket": "15m", "from": iso(at()), "to": iso(at(days=1, hours=1, minutes=1))},
            400,
            "spans 101 buckets of 15m, more than the 100 allowed; use bucket=1h or narrow the "
            "range to at most 1 d 1 h",
            id="too-many-buckets",
        ),
        pytest.param(
            {"bucket": "1d", "from": iso(at()), "to": iso(at(days=110))},
            400,
            "spans 110 buckets of 1d, more than the 100 allowed; narrow the range to at most 100 d",
            id="too-many-day-buckets",
        ),
        pytest.param({"to": iso(at(hours=9))}, 400, "must be before to", id="from-after-to"),
        pytest.param({"metric": "rain"}, 400, "unknown metric 'rain'", id="unknown-metric"),
        pytest.param({"city": "dortmund"}, 400, "not both", id="device-and-city"),
        pytest.param({"device": None}, 400, "pass device (a DevEUI) or city", id="no-scope"),
        pytest.param({"group": "city"}, 400, "group=city needs city=", id="group-city-device"),
        pytest.param({"device": "D00000000000000"}, 400, "16 hexadecimal digits", id="bad-eui"),
        pytest.param({"device": "D000000000000009"}, 404, "D000000000000009", id="unknown"),
        pytest.param({"metric": None}, 422, "'metric' is required", id="no-metric"),
        pytest.param(
            {"fn": "median"}, 422, "'avg', 'min', 'max', 'sum', 'count', 'last' or 'delta'", id="fn"
        ),
        pytest.param({"bucket": "2h"}, 422, "'15m', '1h' or '1d'", id="bucket"),
        pytest.param({"group": "street"}, 422, "'device' or 'city'", id="group"),
    ],
)
def test_errors(
    client: TestClient,
    city_data: Seed,
    params: dict[str, str | None],
    status: int,
    detail_part: str,
) -> None:
    query = {
        "metric": "temperature",
        "device": D1,
        "from": iso(at(hours=10)),
        "to": iso(at(hours=14)),
        **params,
    }

    response = client.get(PATH, params={k: v for k, v in query.items() if v is not None})

    assert response.status_code == status, response.text
    assert detail_part in response.json()["detail"]


@pytest.mark.parametrize(
    "params",
    [
        {"device": D1, "fn": "avg"},
        {"device": D1, "fn": "count", "bucket": "1d", "from": iso(at(hours=-24))},
        {"device": D2, "from": iso(at(hours=12)), "to": iso(at(hours=13))},  # no points
        {"city": "dortmund", "fn": "sum"},
        {"city": "dortmund", "group": "device", "fn": "last"},
        {"city": "schwerte", "from": iso(at(hours=12, minutes=7))},  # ragged range
    ],
    ids=["device", "device-days", "empty", "city", "city-per-device", "ragged"],
)
def test_the_body_is_what_the_response_model_renders(
    client: TestClient, city_data: Seed, params: dict[str, str]
) -> None:
    # Points are rendered without a model each: byte for byte what the model would render.
    query = {"metric": "temperature", "from": iso(at(hours=10)), "to": iso(at(hours=14))}
    response = client.get(PATH, params={**query, **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    body["start"], body["end"] = body.pop("from"), body.pop("to")  # aliases for output only
    model = AggregateOut.model_validate(body)
    assert response.content == model.model_dump_json(by_alias=True).encode()
