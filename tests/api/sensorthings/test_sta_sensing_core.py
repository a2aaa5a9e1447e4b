"""The Sensing Core conformance class (OGC 18-088 A.1) as the OGC test suite checks it.

Each test is an assertion of ets-sta10's `sensingCore/Capability1Tests.java` (the OGC's
executable test suite for SensorThings, FraunhoferIOSB/ets-sta10), named after its
method there, with the entity types' mandatory properties and relations of its
`util/EntityType.java`.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from api_helpers import Seed
from fastapi.testclient import TestClient
from sta_world import ROOT, build

# util/EntityType.java: entity set -> (mandatory properties, relations)
ENTITY_TYPES = {
    "Things": (["name", "description"], ["Datastreams", "HistoricalLocations", "Locations"]),
    "Locations": (
        ["name", "description", "encodingType", "location"],
        ["HistoricalLocations", "Things"],
    ),
    "HistoricalLocations": (["time"], ["Thing", "Locations"]),
    "Datastreams": (
        ["name", "description", "unitOfMeasurement", "observationType"],
        ["Thing", "Sensor", "ObservedProperty", "Observations"],
    ),
    "Sensors": (["name", "description", "encodingType", "metadata"], ["Datastreams"]),
    "ObservedProperties": (["name", "definition", "description"], ["Datastreams"]),
    "Observations": (
        ["phenomenonTime", "result", "resultTime"],
        ["Datastream", "FeatureOfInterest"],
    ),
    "FeaturesOfInterest": (["name", "description", "encodingType", "feature"], ["Observations"]),
}
SINGULAR = {
    "Thing": "Things",
    "Datastream": "Datastreams",
    "Sensor": "Sensors",
    "ObservedProperty": "ObservedProperties",
    "FeatureOfInterest": "FeaturesOfInterest",
}
RESOURCE_PATH_LEVEL = 4  # Capability1Tests.resourcePathLevel
LONG_MAX = 2**63 - 1  # readNonexistentEntity asks for id Long.MAX_VALUE


@pytest.fixture
def world(conn: psycopg.Connection, seed: Seed) -> None:
    build(conn, seed)


def get(client: TestClient, path: str) -> dict[str, object]:
    response = client.get(path if path.startswith("http") else f"/sta/v1.1/{path}")
    assert response.status_code == 200, (path, response.text)
    body = response.json()
    assert isinstance(body, dict)
    return body


def first_id(client: TestClient, entity_set: str) -> int:
    value = get(client, entity_set)["value"]
    assert isinstance(value, list) and value, entity_set
    return int(value[0]["@iot.id"])


def check_entity(entity_set: str, entity: dict[str, object]) -> None:
    """checkEntityControlInformation, checkEntityProperties, checkEntityRelations."""
    properties, relations = ENTITY_TYPES[entity_set]
    assert entity.get("@iot.id") is not None
    assert entity.get("@iot.selfLink") is not None
    for name in properties:
        assert entity.get(name) is not None, (entity_set, name)
    for relation in relations:
        assert entity.get(f"{relation}@iot.navigationLink") is not None, (entity_set, relation)


def test_check_service_root_uri(client: TestClient, world: None) -> None:
    body = get(client, "")
    names = {entry["name"]: entry["url"] for entry in body["value"]}  # type: ignore[attr-defined]

    assert names == {name: f"{ROOT}/{name}" for name in ENTITY_TYPES}


@pytest.mark.parametrize("entity_set", ENTITY_TYPES)
def test_read_entities_and_check_response(client: TestClient, world: None, entity_set: str) -> None:
    value = get(client, entity_set)["value"]

    assert isinstance(value, list) and value
    for entity in value[:2]:
        check_entity(entity_set, entity)


@pytest.mark.parametrize("entity_set", ENTITY_TYPES)
def test_read_nonexistent_entity(client: TestClient, world: None, entity_set: str) -> None:
    response = client.get(f"/sta/v1.1/{entity_set}({LONG_MAX})")

    assert response.status_code == 404
    assert response.json()["message"]


@pytest.mark.parametrize("entity_set", ENTITY_TYPES)
def test_read_entity_and_check_response(client: TestClient, world: None, entity_set: str) -> None:
    entity_id = first_id(client, entity_set)

    check_entity(entity_set, get(client, f"{entity_set}({entity_id})"))


@pytest.mark.parametrize("entity_set", ENTITY_TYPES)
def test_read_property_of_entity_and_check_response(
    client: TestClient, world: None, entity_set: str
) -> None:
    entity_id = first_id(client, entity_set)
    for name in ENTITY_TYPES[entity_set][0]:
        # checkGetPropertyOfEntity: 200, the property and nothing else
        body = get(client, f"{entity_set}({entity_id})/{name}")
        assert list(body) == [name] and body[name] is not None
        # checkGetPropertyValueOfEntity: the raw value; JSON objects for these three only
        raw = client.get(f"/sta/v1.1/{entity_set}({entity_id})/{name}/$value")
        assert raw.status_code == 200
        if name in ("location", "feature", "unitOfMeasurement"):
            assert raw.text.index("{") == 0
        else:
            assert "{" not in raw.text


def related_paths() -> Iterator[tuple[str, ...]]:
    """readRelatedEntity: every chain of navigation properties up to the level."""

    def walk(chain: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield chain
        if len(chain) == RESOURCE_PATH_LEVEL:
            return
        head = SINGULAR.get(chain[-1], chain[-1])
        for relation in ENTITY_TYPES[head][1]:
            yield from walk((*chain, relation))

    for entity_set in ENTITY_TYPES:
        yield from walk((entity_set,))


@pytest.mark.parametrize("entity_set", ENTITY_TYPES)
def test_check_resource_paths(client: TestClient, world: None, entity_set: str) -> None:
    seen: dict[str, dict[str, object]] = {}

    def once(path: str) -> dict[str, object]:
        if path not in seen:
            seen[path] = get(client, path)
        return seen[path]

    for chain in (c for c in related_paths() if c[0] == entity_set):
        # The ids are those of the first entity at each plural step, as the suite takes them.
        path = chain[0]
        for relation in chain[1:]:
            body = once(path)
            if "value" in body:
                path += f"({body['value'][0]['@iot.id']})"  # type: ignore[index]
            path += f"/{relation}"
        body = once(path)
        entity = body["value"][0] if "value" in body else body  # type: ignore[index]
        assert entity["@iot.id"] is not None  # type: ignore[index]
        # checkAssociationLinks: $ref lists self links and nothing else
        refs = get(client, f"{path}/$ref")
        items = refs["value"][:2] if "value" in refs else [refs]  # type: ignore[index]
        for item in items:
            assert list(item) == ["@iot.selfLink"]
