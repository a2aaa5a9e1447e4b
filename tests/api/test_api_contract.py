"""The contract of docs/api.md, over every route of the OpenAPI document: unknown and
repeated parameters, cities in any case, URLs that are not UTF-8, HEAD, offline /docs."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from api_helpers import API_LIMITS, NOISY, Seed, at, build_app, iso
from fastapi import FastAPI
from fastapi.testclient import TestClient

import decoders
from datahub.domain import City
from datahub.storage import usage

EUI = "70B3D57ED0000A01"
# Dozens of anonymous requests in a second: the rate limit has tests of its own.
UNLIMITED = {"anonymous_requests_per_s": 1_000_000}
# A value for each path parameter of the document (the checks below come first).
PATH_VALUES = {"dev_eui": EUI}


@pytest.fixture
def app(database: Any, conn: psycopg.Connection) -> FastAPI:
    return build_app(database.settings(api=API_LIMITS, fairshare=UNLIMITED), conn)


def operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    """Every operation of the app's OpenAPI document: (method, path filled in, operation)."""
    found = []
    for template, methods in app.openapi()["paths"].items():
        path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "x"), template)
        for method, operation in methods.items():
            found.append((method.upper(), path, operation))
    return found


def query_parameters(operation: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in operation.get("parameters", ()) if p["in"] == "query"]


def test_an_unknown_parameter_is_422_on_every_route(app: FastAPI, client: TestClient) -> None:
    checked = operations(app)
    assert len(checked) >= 30

    for method, path, _ in checked:
        response = client.request(method, path, params={"nonsense": "1"})

        assert response.status_code == 422, (method, path, response.text)
        body = response.json()
        # A route may add its standard's keys (SensorThings: code, type, message).
        assert (body["error"], body["detail"]) == (
            "ValidationError",
            "query parameter 'nonsense' is not a parameter of this endpoint",
        ), (method, path)


def test_a_single_valued_parameter_given_twice_is_422_on_every_route(
    app: FastAPI, client: TestClient
) -> None:
    checked = 0
    for method, path, operation in operations(app):
        for parameter in query_parameters(operation):
            if "array" in str(parameter["schema"]):
                continue
            name = parameter["name"]
            response = client.request(method, path, params=[(name, "a"), (name, "b")])

            assert response.status_code == 422, (method, path, name, response.text)
            assert response.json()["detail"] == (
                f"query parameter '{name}': takes one value, given 2, got ['a', 'b']"
            )
            checked += 1
    assert checked >= 30


@pytest.fixture
def city_data(seed: Seed) -> Seed:
    seed.device(EUI, city=City.SCHWERTE)
    seed.readings(EUI, "temperature", {at(hours=1): 12.5})
    return seed


@pytest.mark.parametrize("spelling", ["schwerte", "Schwerte", "SCHWERTE", "sChWeRtE"])
def test_a_city_is_accepted_in_any_case(client: TestClient, city_data: Seed, spelling: str) -> None:
    window = {"from": iso(at()), "to": iso(at(hours=2))}
    aggregate = {"metric": "temperature", "city": spelling, **window}

    devices = client.get("/v1/devices", params={"city": spelling})
    latest = client.get("/v1/latest", params={"city": spelling})
    series = client.get("/v1/readings/aggregate", params=aggregate)

    assert [d["dev_eui"] for d in devices.json()["items"]] == [EUI]
    assert [(v["city"], v["value"]) for v in latest.json()["items"]] == [("schwerte", 12.5)]
    assert series.json()["series"][0]["city"] == "schwerte"


def test_a_city_unknown_in_any_case_is_still_422(client: TestClient) -> None:
    response = client.get("/v1/latest", params={"city": "Berlin"})

    assert response.status_code == 422
    assert "'city'" in response.json()["detail"]


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        (
            "/v1/devices/%FF%FE",
            "the URL's path is not UTF-8 once percent-decoded (byte 0xFF at 12); "
            "encode text as UTF-8",
        ),
        (
            "/v1/latest?city=%C3",
            "the URL's query string is not UTF-8 once percent-decoded (byte 0xC3 at 5); "
            "encode text as UTF-8",
        ),
    ],
)
def test_a_url_that_is_not_utf8_is_a_json_400(client: TestClient, url: str, detail: str) -> None:
    response = client.get(url)

    assert response.status_code == 400
    assert response.json() == {"error": "BadRequest", "detail": detail}


def test_head_answers_as_get_without_a_body_on_every_get_route(
    app: FastAPI, client: TestClient, city_data: Seed
) -> None:
    gets = [(path, op) for method, path, op in operations(app) if method == "GET"]
    for path in [p for p, _ in gets] + ["/", "/docs"]:
        got = client.get(path)
        head = client.head(path)

        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        assert head.headers.get("content-type") == got.headers.get("content-type"), path
        if got.status_code == 200 and "content-length" in got.headers:
            assert head.headers["content-length"] == str(len(got.content)), path


def test_head_serves_and_meters_nothing(
    client: TestClient, city_data: Seed, conn: psycopg.Connection
) -> None:
    url = f"/v1/devices/{EUI}/readings"
    params = {"from": iso(at()), "to": iso(at(hours=2))}

    head = client.head(url, params=params)
    recorded_after_head = usage.sum_usage(conn)
    got = client.get(url, params=params)

    assert head.status_code == 200 and recorded_after_head == 0
    assert got.status_code == 200 and usage.sum_usage(conn) == 1


def test_head_of_a_route_without_get_is_405(client: TestClient) -> None:
    response = client.head("/v1/admin/keys/x")  # DELETE only

    assert response.status_code == 405


def test_docs_work_without_internet(client: TestClient) -> None:
    page = client.get("/docs")

    assert page.status_code == 200
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page.text), "an asset from elsewhere"
    assets = re.findall(r"(?:src|href)=['\"]?(/docs/assets/[^'\" >]+)", page.text)
    assert {a.rsplit("/", 1)[1] for a in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    assert "/openapi.json" in page.text


def test_values_are_rendered_at_their_profiles_resolution_and_stored_unchanged(
    database: Any, conn: psycopg.Connection, seed: Seed
) -> None:
    client = TestClient(build_app(database.settings(api=API_LIMITS), conn, catalog=NOISY))
    seed.device(EUI, profile="sensor")
    seed.readings(EUI, "temperature", {at(): 7.154999999999999})
    seed.readings(EUI, "battery_voltage", {at(): 3.3000000000000003})
    params = {"from": iso(at()), "to": iso(at(hours=1))}

    raw = client.get(f"/v1/devices/{EUI}/readings", params=params).json()["items"]
    csv = client.get(f"/v1/devices/{EUI}/readings", params={**params, "format": "csv"}).text
    latest = client.get("/v1/latest").json()["items"]

    assert [(r["metric"], r["value"]) for r in raw] == [
        ("battery_voltage", 3.3),
        ("temperature", 7.155),
    ]
    assert csv.splitlines()[1:] == [
        f"{iso(at())},battery_voltage,3.3,V",
        f"{iso(at())},temperature,7.155,Cel",
    ]
    assert [(v["metric"], v["value"]) for v in latest] == [
        ("battery_voltage", 3.3),
        ("temperature", 7.155),
    ]
    stored = conn.execute("SELECT metric, value FROM reading ORDER BY metric").fetchall()
    assert stored == [("battery_voltage", 3.3000000000000003), ("temperature", 7.154999999999999)]


def test_every_built_in_mapping_but_one_declares_a_resolution() -> None:
    undeclared = [
        (profile.id, m.metric)
        for profile in decoders.CATALOG.values()
        for m in profile.mappings
        if m.decimals is None
    ]
    # Decentlab computes illuminance from two photodiodes with factors of its own and
    # documents no resolution: rendered as stored.
    assert undeclared == [("decentlab/dl-iam", "illuminance")]
