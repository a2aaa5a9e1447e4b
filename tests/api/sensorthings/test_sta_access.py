"""Access, metering and licences of the SensorThings API: the REST API's callers and
datasets (access_world: one sensor per licence class), and bad input."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from access_world import COMMERCIAL, OPEN, RESTRICTED, VALUES, World, build_world
from api_helpers import Seed
from fastapi.testclient import TestClient

STA = "/sta/v1.1"
# Who sees which sensors (access_world's grants: the company has the commercial dataset,
# the department the restricted one, the supplier both of its own).
SEES = {
    "anonymous": {OPEN},
    "stranger": {OPEN},
    "company": {OPEN, COMMERCIAL},
    "department": {OPEN, RESTRICTED},
    "supplier": {OPEN, COMMERCIAL, RESTRICTED},
}


@pytest.fixture
def world(conn: psycopg.Connection, seed: Seed) -> World:
    return build_world(conn, seed)


def things(client: TestClient, world: World, who: str) -> dict[str, int]:
    body = client.get(f"{STA}/Things?$count=true", headers=world.headers(who)).json()
    found = {t["properties"]["dev_eui"]: t["@iot.id"] for t in body["value"]}
    assert body["@iot.count"] == len(found)
    return found


def ledger(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        """
        SELECT c.slug, ds.slug, u.endpoint, u.observations
        FROM usage u JOIN dataset ds ON ds.id = u.dataset_id
        LEFT JOIN consumer c ON c.id = u.consumer_id ORDER BY u.id
        """
    ).fetchall()


@pytest.mark.parametrize("who", SEES)
def test_each_caller_sees_exactly_its_datasets_in_lists_and_counts(
    client: TestClient, world: World, who: str
) -> None:
    assert set(things(client, world, who)) == SEES[who]
    body = client.get(f"{STA}/Observations?$count=true&$top=100", headers=world.headers(who)).json()
    assert {o["result"] for o in body["value"]} == {
        VALUES[d] + h for d in SEES[who] for h in range(3)
    }
    assert body["@iot.count"] == 3 * len(SEES[who])
    datastreams = client.get(f"{STA}/Datastreams?$count=true", headers=world.headers(who)).json()
    # the climate profile reports three metrics: three Datastreams per sensor
    assert datastreams["@iot.count"] == len(datastreams["value"]) == 3 * len(SEES[who])


def test_restricted_entities_are_404_like_unknown_ones(client: TestClient, world: World) -> None:
    ids = things(client, world, "supplier")
    hidden = ids[RESTRICTED]
    datastream = client.get(
        f"{STA}/Things({hidden})/Datastreams",
        params={"$filter": "ObservedProperty/name eq 'temperature'"},
        headers=world.headers("supplier"),
    ).json()["value"][0]["@iot.id"]
    observation = client.get(
        f"{STA}/Datastreams({datastream})/Observations", headers=world.headers("supplier")
    ).json()["value"][0]["@iot.id"]

    for path in (
        f"Things({hidden})",
        f"Things({hidden})/Datastreams",
        f"Datastreams({datastream})",
        f"Datastreams({datastream})/Observations",
        f"Observations({observation})",
        f"Observations({observation})/result/$value",
    ):
        unknown = path.replace(str(hidden), "999999").replace(str(observation), "1")
        hidden_answer = client.get(f"{STA}/{path}")
        assert hidden_answer.status_code == 404, path
        assert client.get(f"{STA}/{unknown}").status_code == 404
    granted = client.get(f"{STA}/Observations({observation})", headers=world.headers("department"))
    assert granted.status_code == 200
    assert granted.json()["result"] == VALUES[RESTRICTED]


def test_observations_are_metered_per_dataset_and_licences_linked(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    response = client.get(
        f"{STA}/Things?$expand=Datastreams($expand=Observations($top=2))",
        headers=world.headers("company"),
    )

    assert response.status_code == 200
    assert sorted(ledger(conn)) == [
        ("company", "dew21", "/sta/v1.1/{path:path}", 2),
        ("company", "sws-waste", "/sta/v1.1/{path:path}", 2),
    ]
    links = response.headers["link"]
    assert "licences/sws-waste" in links
    thing = next(t for t in response.json()["value"] if t["properties"]["dev_eui"] == COMMERCIAL)
    assert thing["properties"]["licence"]["url"] == "https://example.org/licences/sws-waste"
    assert thing["Datastreams"][0]["properties"]["licence"]["attribution"] == (
        "Stadtwerke Schwerte (sws-waste)"
    )


def test_metadata_counts_and_refs_are_not_metered(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    for path in ("Things", "Datastreams", "Observations?$top=0&$count=true", "Observations/$ref"):
        assert client.get(f"{STA}/{path}", headers=world.headers("company")).status_code == 200

    assert ledger(conn) == []


def test_an_aggregate_point_counts_as_one_observation(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    datastream = client.get(
        f"{STA}/Datastreams", params={"$filter": "properties/metric eq 'temperature'"}
    ).json()["value"][0]["@iot.id"]
    body = client.get(
        f"{STA}/Datastreams({datastream})/Observations",
        params={
            "aggregate": "1h",
            "$filter": "phenomenonTime ge 2024-05-01T00:00:00Z and "
            "phenomenonTime lt 2024-05-01T03:00:00Z",
        },
    ).json()

    assert [p["result"] for p in body["value"]] == [10.0, 11.0, 12.0]
    assert ledger(conn) == [(None, "dew21", "/sta/v1.1/{path:path}", 3)]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("$filter=result gt", "$filter: expected a value"),
        ("$filter=colour eq 'red'", "Observation has no property 'colour'"),
        ("$top=10001", "$top=10001 is over the maximum of 10000"),
        ("$orderby=result sideways", "$orderby: unexpected 'sideways'"),
        ("top=5", "unknown query option 'top'"),
        ("$skiptoken=forged", "$skiptoken is not one of this collection's @iot.nextLink"),
    ],
)
def test_bad_input_is_400_naming_what_is_wrong(
    client: TestClient, world: World, query: str, message: str
) -> None:
    response = client.get(f"{STA}/Observations?{query}")

    assert response.status_code == 400
    body = response.json()
    assert message in body["message"]
    assert body["detail"] == body["message"] and body["code"] == 400
