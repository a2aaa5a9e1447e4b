"""Access, metering and licences of the SensorThings API: the REST API's callers and
datasets (access_world: one sensor per licence class), and bad input."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from access_world import COMMERCIAL, OPEN, RESTRICTED, VALUES, World, build_world
from api_helpers import API_LIMITS, Seed, build_app
from fastapi.testclient import TestClient

from datahub.storage import sensorthings as sta

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
        ("$skiptoken=forged", "$skiptoken is not one of this collection's @iot.nextLink"),
        ("$filter=" + "(" * 500 + "result gt 1" + ")" * 500, "nests more than 40 levels deep"),
        ("$filter=" + "not " * 2000 + "result gt 1", "nests more than 40 levels deep"),
    ],
    ids=lambda v: v if len(v) < 80 else v[:40] + "…",
)
def test_bad_input_is_400_naming_what_is_wrong(
    client: TestClient, world: World, query: str, message: str
) -> None:
    response = client.get(f"{STA}/Observations?{query}")

    assert response.status_code == 400
    body = response.json()
    assert message in body["message"]
    assert body["detail"] == body["message"] and body["code"] == 400


OPTIONS = [
    "$filter",
    "$orderby",
    "$top",
    "$skip",
    "$count",
    "$select",
    "$expand",
    "$skiptoken",
    "aggregate",
    "aggregateFn",
]


def test_a_long_list_of_alternatives_is_answered(client: TestClient, world: World) -> None:
    ids = sorted(things(client, world, "supplier").values())
    wanted = " or ".join(f"id eq {i}" for i in [*range(-2000, 0), *ids])

    response = client.get(
        f"{STA}/Things", params={"$filter": wanted}, headers=world.headers("supplier")
    )

    assert response.status_code == 200
    assert sorted(t["@iot.id"] for t in response.json()["value"]) == ids


def test_the_openapi_document_declares_the_query_options(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"][f"{STA}/{{path}}"]["get"]
    declared = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}

    assert list(declared) == OPTIONS
    assert all(p["description"] for p in declared.values())
    assert {"type": "integer", "minimum": 0} in declared["$top"]["schema"]["anyOf"]
    rollup = declared["aggregate"]["schema"]["anyOf"][0]["$ref"].rsplit("/", 1)[1]
    assert document["components"]["schemas"][rollup]["enum"] == ["1h", "1d"]


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("top=5", "query parameter 'top' is not a parameter of this endpoint"),
        ("$resultFormat=dataArray", "query parameter '$resultFormat' is not a parameter of"),
        ("$top=1&$top=2", "query parameter '$top': takes one value, given 2"),
        ("$top=-1", "query parameter '$top': Input should be greater than or equal to 0"),
        ("$count=maybe", "query parameter '$count': Input should be a valid boolean"),
        ("aggregate=2h", "query parameter 'aggregate': Input should be '1h' or '1d'"),
        ("aggregateFn=delta", "query parameter 'aggregateFn': Input should be 'avg', 'min'"),
    ],
)
def test_an_option_the_document_does_not_allow_is_422_as_on_every_route(
    client: TestClient, world: World, query: str, detail: str
) -> None:
    response = client.get(f"{STA}/Observations?{query}")

    assert response.status_code == 422
    body = sta_keys_removed(response.json(), 422)
    assert body["error"] == "ValidationError"
    assert body["detail"].startswith(detail)


def sta_keys_removed(body: dict[str, Any], status: int) -> dict[str, Any]:
    """The hub's part of a SensorThings error body, once its own keys are checked."""
    assert (body.pop("code"), body.pop("type"), body.pop("message")) == (
        status,
        "error",
        body["detail"],
    )
    return body


def test_errors_of_the_key_are_the_rest_apis_with_sensorthings_keys(client: TestClient) -> None:
    headers = {"Authorization": "Bearer dh_unknown"}

    rest = client.get("/v1/devices", headers=headers)
    sta = client.get(f"{STA}/Things", headers=headers)

    assert sta.status_code == rest.status_code == 401
    assert sta_keys_removed(sta.json(), 401) == rest.json()


def test_the_rate_limit_is_the_rest_apis_with_sensorthings_keys(
    database: Any, conn: psycopg.Connection
) -> None:
    settings = database.settings(api=API_LIMITS, fairshare={"anonymous_requests_per_s": 1})
    client = TestClient(build_app(settings, conn))

    answers = [client.get(f"{STA}/Things") for _ in range(3)]

    refused = next(a for a in answers if a.status_code == 429)
    body = sta_keys_removed(refused.json(), 429)
    assert body["error"] == "TooManyRequests" and "rate limit" in body["detail"]
    assert int(refused.headers["retry-after"]) >= 1


def test_head_answers_as_get_without_a_body_and_meters_nothing(
    client: TestClient, world: World, conn: psycopg.Connection
) -> None:
    for path in ("Observations?$top=2", "Things?$expand=Datastreams", "Observations?$top=x"):
        head = client.head(f"{STA}/{path}", headers=world.headers("company"))
        got = client.get(f"{STA}/{path}", headers=world.headers("company"))

        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        for name in ("content-type", "content-length", "link"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)
    assert [observations for *_, observations in ledger(conn)] == [2]


def test_names_get_their_ids_once_whatever_the_request_becomes(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    ensure_ids = sta.ensure_ids

    def counted(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        ensure_ids(*args, **kwargs)

    monkeypatch.setattr(sta, "ensure_ids", counted)

    statuses = [client.get(f"{STA}/{path}").status_code for path in ("Nothing", "Things")]

    assert statuses == [404, 200]
    assert len(calls) == 1
