"""Who reads what: the authorization matrix over every endpoint that returns data.

Restricted and commercial data must reach only the consumers granted it: not through
device listings, raw series, CSV, latest values, aggregates of a city, or error messages.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from access_world import COMMERCIAL, DATASET_OF, OPEN, RESTRICTED, World, build_world
from api_helpers import API_LIMITS, UNLIMITED, Seed, at, build_app, iso
from fastapi.testclient import TestClient

from datahub.fairshare import keys
from datahub.storage import consumers

# Who sees which sensor.
VISIBLE = {
    "anonymous": {OPEN},
    "stranger": {OPEN},
    "department": {OPEN, RESTRICTED},
    "company": {OPEN, COMMERCIAL},
    "admin": {OPEN, COMMERCIAL, RESTRICTED},
    "supplier": {OPEN, COMMERCIAL, RESTRICTED},
}
CALLERS = sorted(VISIBLE)
WINDOW = {"from": iso(at()), "to": iso(at(hours=3))}


@pytest.fixture
def world(conn: psycopg.Connection, seed: Seed) -> World:
    return build_world(conn, seed)


@pytest.mark.parametrize("who", CALLERS)
def test_device_listing_shows_only_visible_devices(
    client: TestClient, world: World, who: str
) -> None:
    body = client.get("/v1/devices", params={"limit": 50}, headers=world.headers(who)).json()

    assert {d["dev_eui"] for d in body["items"]} == VISIBLE[who]
    assert {d["dataset"] for d in body["items"]} == {DATASET_OF[d] for d in VISIBLE[who]}


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("dev_eui", [OPEN, COMMERCIAL, RESTRICTED])
def test_one_device_and_its_series_only_if_visible(
    client: TestClient, world: World, who: str, dev_eui: str
) -> None:
    headers = world.headers(who)
    device = client.get(f"/v1/devices/{dev_eui}", headers=headers)
    series = client.get(f"/v1/devices/{dev_eui}/readings", params=WINDOW, headers=headers)
    csv = client.get(
        f"/v1/devices/{dev_eui}/readings", params={**WINDOW, "format": "csv"}, headers=headers
    )
    aggregate = client.get(
        "/v1/readings/aggregate",
        params={**WINDOW, "metric": "temperature", "device": dev_eui},
        headers=headers,
    )

    if dev_eui in VISIBLE[who]:
        assert [r.status_code for r in (device, series, csv, aggregate)] == [200] * 4
        assert series.json()["items"][0]["value"] in (10.0, 100.0, 1000.0)
        assert series.json()["licences"][0]["dataset"] == DATASET_OF[dev_eui]
    else:
        # Exactly the answer for a device that does not exist: nothing tells it apart.
        missing = client.get("/v1/devices/70B3D57E0000FFFF", headers=headers)
        for response in (device, series, csv, aggregate):
            assert response.status_code == 404
            assert response.json()["detail"] == missing.json()["detail"].replace(
                "70B3D57E0000FFFF", dev_eui
            )
            assert "1000" not in response.text and "sws-" not in response.text


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_latest_values_only_of_visible_devices(
    client: TestClient, world: World, who: str, fmt: str
) -> None:
    response = client.get(
        "/v1/latest", params={"metric": "temperature", "format": fmt}, headers=world.headers(who)
    )

    assert response.status_code == 200
    if fmt == "json":
        listed = {item["dev_eui"] for item in response.json()["items"]}
        assert {lic["dataset"] for lic in response.json()["licences"]} == {
            DATASET_OF[d] for d in VISIBLE[who]
        }
    else:
        listed = {line.split(",")[0] for line in response.text.splitlines()[1:]}
    assert listed == VISIBLE[who]


@pytest.mark.parametrize("who", CALLERS)
def test_city_aggregates_hold_only_visible_readings(
    client: TestClient, world: World, who: str
) -> None:
    params = {**WINDOW, "metric": "temperature", "city": "dortmund", "fn": "max"}
    city = client.get("/v1/readings/aggregate", params=params, headers=world.headers(who))
    per_device = client.get(
        "/v1/readings/aggregate", params={**params, "group": "device"}, headers=world.headers(who)
    )
    csv = client.get(
        "/v1/readings/aggregate", params={**params, "format": "csv"}, headers=world.headers(who)
    )

    highest = max({OPEN: 10.0, COMMERCIAL: 100.0, RESTRICTED: 1000.0}[d] for d in VISIBLE[who])
    (series,) = city.json()["series"]
    assert [p["value"] for p in series["points"]] == [highest, highest + 1, highest + 2]
    assert [p["count"] for p in series["points"]] == [len(VISIBLE[who])] * 3
    assert {s["device"] for s in per_device.json()["series"]} == VISIBLE[who]
    assert csv.text.splitlines()[1].endswith(f",{highest},{len(VISIBLE[who])}")


@pytest.mark.parametrize("who", CALLERS)
def test_dataset_list_and_filter(client: TestClient, world: World, who: str) -> None:
    listed = client.get("/v1/datasets", headers=world.headers(who)).json()["items"]
    visible = {DATASET_OF[d] for d in VISIBLE[who]}

    # Seed's Schwerte dataset is open too, with no devices in this world.
    assert {d["slug"] for d in listed} == visible | {"stadtwerke-schwerte"}
    for slug in ("sws-waste", "sws-parking"):
        filtered = client.get(
            "/v1/readings/aggregate",
            params={**WINDOW, "metric": "temperature", "city": "dortmund", "dataset": slug},
            headers=world.headers(who),
        )
        if slug in visible:
            assert filtered.status_code == 200
            assert {lic["dataset"] for lic in filtered.json()["licences"]} == {slug}
        else:
            assert filtered.status_code == 404
            assert filtered.json()["detail"] == f"no dataset has slug {slug!r}"


def test_dataset_shows_its_licence_and_metrics(client: TestClient, world: World) -> None:
    listed = client.get("/v1/datasets", headers=world.headers("company")).json()["items"]
    waste = next(d for d in listed if d["slug"] == "sws-waste")

    assert waste == {
        "slug": "sws-waste",
        "name": "sws-waste",
        "supplier": {"slug": "stadtwerke-schwerte", "name": "SWS"},
        "licence_class": "commercial",
        "licence": {
            "id": "proprietary",
            "name": "Licensed to granted consumers",
            "url": "https://example.org/licences/sws-waste",
        },
        "attribution": "Stadtwerke Schwerte (sws-waste)",
        "metrics": ["co2", "humidity", "temperature"],
        "device_count": 1,
    }


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({"Authorization": "Bearer nonsense"}, "the API key is malformed"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Authorization must be 'Bearer <API key>'"),
        ({"X-API-Key": "dh_AAAAAAAAAAAA_" + "A" * 43}, "the API key is not known"),
    ],
)
def test_a_bad_key_is_401_not_anonymous(
    client: TestClient, world: World, headers: dict[str, str], detail: str
) -> None:
    response = client.get("/v1/devices", headers=headers)

    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"
    assert response.json()["detail"].startswith(detail)


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({"X-API-Key": ""}, "X-API-Key is empty"),
        ({"X-API-Key": "   "}, "X-API-Key is empty"),
        ({"Authorization": "Bearer"}, "Authorization must be 'Bearer <API key>'"),
        ({"Authorization": "Bearer   "}, "Authorization must be 'Bearer <API key>'"),
        ({"Authorization": ""}, "Authorization must be 'Bearer <API key>'"),
        ({"Authorization": "", "X-API-Key": ""}, "X-API-Key is empty"),
    ],
    ids=["empty-x-api-key", "blank-x-api-key", "bearer-alone", "blank-bearer", "empty", "both"],
)
def test_an_empty_key_is_401_not_anonymous(
    client: TestClient, world: World, headers: dict[str, str], detail: str
) -> None:
    """A key header sent without a key is a client's mistake, not a wish to be anonymous."""
    for path in ("/v1/devices", "/v1/latest", f"/v1/devices/{OPEN}/readings"):
        response = client.get(path, headers=headers)

        assert response.status_code == 401, path
        assert response.json()["detail"].startswith(detail)
        assert response.headers["www-authenticate"] == 'Bearer realm="datahub"'


def test_two_different_keys_are_401(client: TestClient, world: World) -> None:
    response = client.get(
        "/v1/devices",
        headers={
            "Authorization": f"Bearer {world.keys['department']}",
            "X-API-Key": world.keys["company"],
        },
    )
    same = client.get(
        "/v1/devices",
        headers={
            "Authorization": f"Bearer {world.keys['company']}",
            "X-API-Key": world.keys["company"],
        },
    )

    assert response.status_code == 401
    assert "two different keys" in response.json()["detail"]
    assert same.status_code == 200


def test_a_revoked_key_is_401(client: TestClient, world: World, conn: psycopg.Connection) -> None:
    prefix = keys.parse_prefix(world.keys["company"])
    assert prefix is not None
    consumers.mark_key_revoked(conn, prefix=prefix)

    response = client.get("/v1/devices", headers=world.headers("company"))

    assert response.status_code == 401
    assert response.json()["detail"] == "the API key has been revoked"


def test_a_key_also_works_as_x_api_key(client: TestClient, world: World) -> None:
    response = client.get(
        f"/v1/devices/{RESTRICTED}", headers={"X-API-Key": world.keys["department"]}
    )

    assert response.status_code == 200


def test_the_openapi_document_says_which_routes_need_a_key(
    database: Any, conn: psycopg.Connection, world: World
) -> None:
    """A route marked as also answering anonymous callers does; every other refuses them."""
    client = TestClient(build_app(database.settings(api=API_LIMITS, fairshare=UNLIMITED), conn))
    paths = client.get("/openapi.json").json()["paths"]
    values = {
        "dev_eui": OPEN,
        "period": "2026-11",
        "slug": "sws-waste",
        "prefix": "x",
        "path": "Things",
        "letter_id": "1",
        "seq": "1",
        "dataset": "sws-waste",
        "name": "2026-11.csv.gz",
    }
    checked = 0
    for path, operations in paths.items():
        operation = operations.get("get")
        if operation is None or "security" not in operation:
            continue
        url = path.format(**{k: v for k, v in values.items() if "{" + k + "}" in path})
        params = {"metric": "temperature", "city": "dortmund"} if "aggregate" in path else {}
        status = client.get(url, params=params).status_code
        anonymous_too = {} in operation["security"]
        assert (status not in (401, 403)) == anonymous_too, (path, status)
        checked += 1
    assert checked >= 10
