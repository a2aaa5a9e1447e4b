"""Privacy classes on every output: what a caller without a grant learns of private owners'
and personal devices, over every route the OpenAPI document lists, every format, the
SensorThings entity sets and the bulk files; and what a caller with a grant sees.

The world: one sensor of the city (public infrastructure), two citizens' weather stations
(private owner, exact positions) and personal devices (counting people) in open datasets.
Each personal device reports values found nowhere else, so any one of them showing is a
leak; with fewer than k personal devices not even their city-wide aggregate may show.
"""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from access_world import consumer
from api_helpers import API_LIMITS, TEST_CATALOG, Seed, at, build_app, iso
from fastapi.testclient import TestClient
from httpx import Response

from datahub.config import Settings
from datahub.domain import Location
from datahub.opendata.bulk import BulkWriter
from datahub.privacy import View, public_id
from datahub.storage import datasets, privacy, rollups
from datahub.storage import sensorthings as sta
from datahub.storage.datasets import DatasetFields

K = 5
CITY = "70B3D57E000000C1"
OWNERS = {
    # DevEUI -> (name, exact position); the second keeps the registry's default name.
    "70B3D57E000000A1": ("Garten Familie Meier", Location(51.5123456, 7.4654321)),
    "70B3D57E000000A2": ("70B3D57E000000A2", Location(51.4987654, 7.4012345)),
}
WINDOW = {"from": iso(at()), "to": iso(at(hours=3))}
KEY = b"the public ids of the privacy tests, 32+ bytes"


def personal_eui(i: int) -> str:
    return f"70B3D57E0000B{i:03X}"


def personal_value(i: int, hour: int) -> float:
    return 7013.25 + 100 * i + hour


@dataclass(frozen=True)
class World:
    personal: list[str]
    keys: dict[str, str]
    settings: Settings

    @property
    def protected(self) -> list[str]:
        return [*OWNERS, *self.personal]

    def headers(self, who: str) -> dict[str, str]:
        return {} if who == "anonymous" else {"Authorization": f"Bearer {self.keys[who]}"}

    def public(self, dev_eui: str) -> str:
        return public_id(dev_eui, key=KEY)


def _dataset(conn: psycopg.Connection, seed: Seed, slug: str, supplier: str, cls: str) -> int:
    dataset_id = datasets.insert_dataset(
        conn,
        slug=slug,
        supplier_id=seed.supplier_ids[supplier],
        fields=DatasetFields(
            name=slug,
            licence_class="open",
            licence_id="CC-BY-4.0",
            licence_name="Creative Commons Attribution 4.0",
            licence_url="https://creativecommons.org/licenses/by/4.0/",
            attribution=slug,
            privacy=cls,
        ),
    )
    assert dataset_id is not None
    return dataset_id


@pytest.fixture(params=[1, K], ids=["one-personal", "k-personal"])
def world(
    request: pytest.FixtureRequest,
    database: Any,
    conn: psycopg.Connection,
    seed: Seed,
    tmp_path: Path,
) -> World:
    privacy.set_key(conn, key=KEY)
    stations = _dataset(conn, seed, "buergerwetter", "dew21", "private_owner")
    people = _dataset(conn, seed, "passanten", "stadtwerke-schwerte", "personal")
    seed.device(CITY, location=Location(51.51, 7.46))
    seed.readings(CITY, "temperature", {at(hours=h): 10.0 + h for h in range(3)})
    for dev_eui, (name, location) in OWNERS.items():
        seed.device(dev_eui, name=name, location=location, dataset="buergerwetter")
        seed.readings(dev_eui, "temperature", {at(hours=h): 20.5 + h for h in range(3)})
    personal = [personal_eui(i) for i in range(request.param)]
    for i, dev_eui in enumerate(personal):
        seed.device(
            dev_eui,
            supplier="stadtwerke-schwerte",
            dataset="passanten",
            name=f"Zähler {i}",
            location=Location(51.515, 7.465 + i / 1000),
        )
        seed.readings(dev_eui, "temperature", {at(hours=h): personal_value(i, h) for h in range(3)})
    made = {
        "granted": consumer(conn, "granted", purpose="research", grants=(stations, people)),
        "stranger": consumer(conn, "stranger", purpose="research"),
    }
    settings: Settings = database.settings(
        api=API_LIMITS,
        opendata={"bulk_dir": tmp_path / "bulk"},
        privacy={"k_min": K},
        fairshare={"anonymous_requests_per_s": 1_000_000},
    )
    assert settings.opendata.bulk_dir is not None
    BulkWriter(
        conn,
        directory=settings.opendata.bulk_dir,
        metric_index=TEST_CATALOG,
        delay=timedelta(0),
        view=View.of(settings.privacy),
    ).run(now=at(days=1, hours=1))
    return World(personal, {slug: key for slug, (_, key) in made.items()}, settings)


@pytest.fixture
def client(world: World, conn: psycopg.Connection) -> TestClient:
    return TestClient(build_app(world.settings, conn))


# -- what must not show ---------------------------------------------------------------------


def _text(response: Response) -> str:
    body = response.content
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return body.decode("utf-8", errors="replace")


def _coordinates(location: Location) -> list[str]:
    """The exact position as any rendering would write it: repr, and to 1 m (5 decimals)."""
    return [
        repr(location.latitude),
        repr(location.longitude),
        f"{location.latitude:.5f}",
        f"{location.longitude:.5f}",
    ]


def _personal_values(world: World) -> list[str]:
    return [repr(personal_value(i, h)) for i in range(len(world.personal)) for h in range(3)]


def assert_nothing_leaks(world: World, response: Response) -> None:
    """No protected DevEUI, no exact position of a private owner's device, no owner's label
    and no personal value."""
    text = _text(response)
    asked = str(response.request.url).lower()
    where = f"{response.request.method} {response.request.url} -> {response.status_code}"
    for dev_eui in world.protected:
        if dev_eui.lower() in asked:
            continue  # an error may name what the caller sent
        assert dev_eui.lower() not in text.lower(), f"{dev_eui} in {where}"
    for _, location in OWNERS.values():
        for written in _coordinates(location):
            assert written not in text, f"exact position {written} in {where}"
    assert "Garten Familie Meier" not in text, f"an owner's label in {where}"
    for value in _personal_values(world):
        assert value not in text, f"personal value {value} in {where}"


# -- the routes, from the OpenAPI document --------------------------------------------------


def _ids(world: World, protected: list[str] | None = None) -> list[str]:
    """The ids a caller might put in a URL: the shown ones and the DevEUIs behind them (of
    every protected device, or of these)."""
    protected = world.protected if protected is None else protected
    return [CITY, *protected, *(world.public(e) for e in protected)]


def _requests(
    client: TestClient, world: World, *, every_variant: bool
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(URL, query) of every GET route of the OpenAPI document, with its path parameters
    filled in every way and its query parameters in the combinations that select data,
    each with every value of a closed set (`every_variant`) or in every format."""
    document = client.get("/openapi.json").json()
    bulk = client.get("/v1/bulk").json()["items"]
    path_values = {
        "dev_eui": _ids(world),
        "dataset": ["buergerwetter", "passanten", "dew21"],
        "name": sorted({f"{f['period']}.csv.gz" for f in bulk}),
        "slug": ["buergerwetter", "passanten"],
    }
    query_values: dict[str, list[Any]] = {
        "city": [None, "dortmund"],
        # One device of each class, by DevEUI and by public id.
        "device": [None, *_ids(world, [next(iter(OWNERS)), world.personal[0]])],
        "metric": ["temperature"],
        "from": [WINDOW["from"]],
        "to": [WINDOW["to"]],
        "limit": [50],
    }
    for path, operations in document["paths"].items():
        operation = operations.get("get")
        if operation is None or path.startswith("/sta/"):
            continue  # SensorThings: by its entity sets below
        parameters = operation.get("parameters", [])
        in_path = [p["name"] for p in parameters if p["in"] == "path"]
        in_query = [p["name"] for p in parameters if p["in"] == "query"]
        selecting = [n for n in in_query if n in query_values]
        # Every value of a closed set (format, group, fn, …), so that a new one is asked
        # too: one at a time, and each with every format.
        closed = {
            p["name"]: _enum(document, p["schema"])
            for p in parameters
            if p["in"] == "query" and p["name"] not in query_values
        }
        variants: list[dict[str, str]] = [{}, *({"format": f} for f in closed.get("format", []))]
        for name, values in closed.items() if every_variant else ():
            variants += [{name: v} for v in values if name != "format"]
            variants += [
                {name: v, "format": f}
                for v in values
                for f in closed.get("format", [])
                if name != "format"
            ]
        for filled in itertools.product(*(path_values.get(n, ["x"]) for n in in_path)):
            url = path
            for name, value in zip(in_path, filled, strict=True):
                url = url.replace("{" + name + "}", value)
            for chosen in itertools.product(*(query_values[n] for n in selecting)):
                query = {n: v for n, v in zip(selecting, chosen, strict=True) if v is not None}
                for variant in variants:
                    yield url, query | variant


def _enum(document: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """The values of a closed set named by an OpenAPI schema (through $ref and anyOf)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _enum(document, document["components"]["schemas"][name])
    if "enum" in schema:
        return [str(v) for v in schema["enum"]]
    return [v for option in schema.get("anyOf", []) for v in _enum(document, option)]


# In the world of one personal device, where no personal value may show anywhere: every
# route and closed-set value for an anonymous caller; for a key without the grants, the
# same routes with the parameters that select data, in every format.
@pytest.mark.parametrize("world", [1], indirect=True, ids=["one-personal"])
@pytest.mark.parametrize(
    ("who", "every_variant"), [("anonymous", True), ("stranger", False)], ids=["anonymous", "key"]
)
def test_no_route_shows_what_a_grant_would(
    client: TestClient, world: World, who: str, every_variant: bool
) -> None:
    asked = 0
    for url, query in _requests(client, world, every_variant=every_variant):
        response = client.get(url, params=query, headers=world.headers(who))
        asked += 1
        assert response.status_code < 500, f"{url} {query}: {response.text}"
        assert_nothing_leaks(world, response)
    assert asked > 100


def test_a_city_aggregate_of_fewer_than_k_personal_devices_is_withheld(
    client: TestClient, world: World
) -> None:
    params = {**WINDOW, "metric": "temperature", "city": "dortmund"}
    anonymous = client.get("/v1/readings/aggregate", params=params)
    granted = client.get("/v1/readings/aggregate", params=params, headers=world.headers("granted"))

    assert granted.status_code == 200
    if len(world.personal) < K:
        assert anonymous.status_code == 403
        assert anonymous.json()["error"] == "Withheld"
        assert f"at least {K} such devices" in anonymous.json()["detail"]
    else:
        assert anonymous.status_code == 200
        (series,) = anonymous.json()["series"]
        # Every device's readings, the personal ones too: an aggregate over k of them.
        assert [p["count"] for p in series["points"]] == [3 + len(world.personal)] * 3


def test_one_personal_device_is_refused_and_left_out(client: TestClient, world: World) -> None:
    shown = world.public(world.personal[0])
    readings = client.get(f"/v1/devices/{shown}/readings", params=WINDOW)
    device = client.get(f"/v1/devices/{shown}").json()
    by_dev_eui = client.get(f"/v1/devices/{world.personal[0]}")
    per_device = client.get(
        "/v1/readings/aggregate",
        params={**WINDOW, "metric": "temperature", "city": "dortmund", "group": "device"},
    ).json()

    assert readings.status_code == 403 and readings.json()["error"] == "Withheld"
    assert "aggregates over at least 5" in readings.json()["detail"]
    assert device["dev_eui"] == shown and device["privacy"] == "personal"
    assert device["name"] == "Zähler 0"  # a label of the counting site, not of a person
    assert by_dev_eui.status_code == 404  # a DevEUI tried tells nothing
    assert {s["device"] for s in per_device["series"]} == {
        CITY,
        *(world.public(e) for e in OWNERS),
    }


def test_a_private_owners_station_shows_on_the_grid(client: TestClient, world: World) -> None:
    view = View.of(world.settings.privacy)
    listed = {
        d["dev_eui"]: d for d in client.get("/v1/devices", params={"limit": 50}).json()["items"]
    }
    again = {
        d["dev_eui"]: d for d in client.get("/v1/devices", params={"limit": 50}).json()["items"]
    }

    for dev_eui, (_, location) in OWNERS.items():
        shown = listed[world.public(dev_eui)]
        snapped = view.grid.snap(location.latitude, location.longitude)
        assert (shown["location"]["latitude"], shown["location"]["longitude"]) == snapped
        assert shown == again[world.public(dev_eui)]  # the same answer on every call
        assert shown["name"] == world.public(dev_eui)
        readings = client.get(f"/v1/devices/{world.public(dev_eui)}/readings", params=WINDOW)
        assert [r["value"] for r in readings.json()["items"]] == [20.5, 21.5, 22.5]
    # The protected devices come after the others, by public id: their order tells nothing
    # of their DevEUIs.
    assert list(listed) == [CITY, *sorted(world.public(e) for e in world.protected)]


def test_a_caller_with_a_grant_sees_the_devices_as_they_are(
    client: TestClient, world: World
) -> None:
    headers = world.headers("granted")
    listed = {
        d["dev_eui"]: d
        for d in client.get("/v1/devices", params={"limit": 50}, headers=headers).json()["items"]
    }
    latest = client.get("/v1/latest", params={"metric": "temperature"}, headers=headers).json()
    readings = client.get(
        f"/v1/devices/{world.personal[0]}/readings", params=WINDOW, headers=headers
    ).json()
    by_public_id = client.get(f"/v1/devices/{world.public(world.personal[0])}", headers=headers)

    assert set(listed) == {CITY, *world.protected}
    for dev_eui, (name, location) in OWNERS.items():
        assert listed[dev_eui]["name"] == name
        assert listed[dev_eui]["location"] == {
            "latitude": location.latitude,
            "longitude": location.longitude,
        }
    assert {i["dev_eui"] for i in latest["items"]} == {CITY, *world.protected}
    assert [r["value"] for r in readings["items"]] == [personal_value(0, h) for h in range(3)]
    assert by_public_id.json()["dev_eui"] == world.personal[0]


# -- SensorThings and the live publication ----------------------------------------------------

_STA_QUERIES = {
    "Things": ["$expand=Locations,Datastreams($expand=Observations)", "$top=100"],
    "Datastreams": ["$expand=Observations,Thing", "$top=100"],
    "Observations": ["$expand=FeatureOfInterest,Datastream", "$top=100"],
}


def test_sensorthings_shows_no_more(client: TestClient, world: World) -> None:
    sets = [e["name"] for e in client.get("/sta/v1.1").json()["value"]]
    for name in sets:
        for options in ["$top=100", *_STA_QUERIES.get(name, [])]:
            response = client.get(f"/sta/v1.1/{name}?{options}")
            assert response.status_code == 200, response.text
            assert_nothing_leaks(world, response)
    # A filter on a hidden property finds nothing; on the shown one, the Thing.
    for dev_eui in world.protected:
        hidden = client.get(f"/sta/v1.1/Things?$filter=properties/dev_eui eq '{dev_eui}'")
        shown = client.get(
            f"/sta/v1.1/Things?$filter=properties/dev_eui eq '{world.public(dev_eui)}'"
        )
        assert hidden.json()["value"] == []
        assert len(shown.json()["value"]) == 1
    granted = client.get(
        "/sta/v1.1/Things?$expand=Locations", headers=world.headers("granted")
    ).json()["value"]
    assert {t["properties"]["dev_eui"] for t in granted} == {CITY, *world.protected}


@pytest.mark.parametrize("who", ["anonymous", "stranger", "granted"])
def test_sensorthings_counts_what_it_shows(
    client: TestClient, world: World, conn: psycopg.Connection, who: str
) -> None:
    """`@iot.count` is the size of the set the caller pages through: the Observations of
    personal devices are left out of a stranger's count, from the readings of hours not
    yet rolled up and from the daily rollups alike."""
    shown_to_all = 3 * (1 + len(OWNERS))
    expected = shown_to_all + (3 * len(world.personal) if who == "granted" else 0)
    for refreshed in (False, True):
        for name in ("Things", "Datastreams", "Observations"):
            body = client.get(
                f"/sta/v1.1/{name}?$count=true&$top=100", headers=world.headers(who)
            ).json()
            assert body["@iot.count"] == len(body["value"]), (name, refreshed)
        assert body["@iot.count"] == expected
        while rollups.refresh(conn):
            pass  # the rest counts from the rollups
        assert rollups.count_dirty(conn) == 0


def test_personal_devices_are_never_published_live(
    conn: psycopg.Connection, world: World, seed: Seed
) -> None:
    published = sta.select_open_devices(conn)

    assert seed.ids[CITY] in published
    assert all(seed.ids[e] in published for e in OWNERS)
    assert not any(seed.ids[e] in published for e in world.personal)
