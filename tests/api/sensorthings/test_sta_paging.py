"""Keyset paging: walking `@iot.nextLink` gives exactly the rows of one big page, in its
order, for orderings with ties, nulls and expressions, also under `$skip` and expansions."""

from __future__ import annotations

import psycopg
import pytest
from api_helpers import Seed
from fastapi.testclient import TestClient
from sta_world import build


@pytest.fixture
def world(conn: psycopg.Connection, seed: Seed) -> None:
    build(conn, seed)


def walk(client: TestClient, url: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    next_url: str | None = url
    while next_url:
        body = client.get(next_url).json()
        assert "value" in body, body
        rows += body["value"]
        next_url = body.get("@iot.nextLink")
    return rows


@pytest.mark.parametrize(
    "query",
    [
        "Observations?$orderby=result desc",
        "Observations?$orderby=year(phenomenonTime),result desc",
        "Observations?$orderby=phenomenonTime desc&$filter=result lt 100",
        "Observations?$skip=3",
        # Datastreams without readings have no phenomenonTime: nulls within the ordering.
        "Datastreams?$orderby=phenomenonTime/end desc,name",
        "Datastreams?$orderby=phenomenonTime/start",
        "Things?$orderby=properties/city desc&$expand=Datastreams($top=1)",
        "Locations?$orderby=properties/since desc",
    ],
)
def test_walking_pages_equals_one_page(client: TestClient, world: None, query: str) -> None:
    whole = client.get(f"/sta/v1.1/{query}&$top=1000").json()["value"]
    walked = walk(client, f"/sta/v1.1/{query}&$top=1")

    assert [r["@iot.id"] for r in walked] == [r["@iot.id"] for r in whole]
    assert len(whole) > 1


def test_an_expanded_collection_links_its_next_page(client: TestClient, world: None) -> None:
    datastream = client.get(
        "/sta/v1.1/Datastreams",
        params={
            "$filter": "properties/metric eq 'temperature' and Thing/properties/city eq 'dortmund'",
            "$expand": "Observations($top=2;$orderby=phenomenonTime desc)",
        },
    ).json()["value"][0]
    rest = walk(client, datastream["Observations@iot.nextLink"])
    everything = walk(
        client,
        f"/sta/v1.1/Datastreams({datastream['@iot.id']})/Observations?$orderby=phenomenonTime desc",
    )

    assert [o["result"] for o in datastream["Observations"] + rest] == [
        o["result"] for o in everything
    ]
