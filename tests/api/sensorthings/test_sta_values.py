"""SensorThings results are the REST API's values: Observations at the resolution of
their profile's mapping wherever they appear, aggregates as /v1/readings/aggregate
computes them; the stored values unchanged."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from api_helpers import API_LIMITS, NOISY, Seed, at, build_app, iso
from fastapi.testclient import TestClient

STA = "/sta/v1.1"
EUI = "70B3D57ED0000B01"
TEMPERATURES = {at(): 7.154999999999999, at(minutes=30): 7.2, at(hours=1): 7.1000000000000005}


@pytest.fixture
def client(database: Any, conn: psycopg.Connection, seed: Seed) -> TestClient:
    seed.device(EUI, profile="sensor")
    seed.readings(EUI, "temperature", TEMPERATURES)
    seed.readings(EUI, "battery_voltage", {at(): 3.3000000000000003})
    return TestClient(build_app(database.settings(api=API_LIMITS), conn, catalog=NOISY))


def datastream(client: TestClient, metric: str) -> int:
    found = client.get(
        f"{STA}/Datastreams", params={"$filter": f"properties/metric eq '{metric}'"}
    ).json()["value"]
    return int(found[0]["@iot.id"])


def rest_values(client: TestClient, metric: str) -> list[float]:
    params = {"metric": metric, "from": iso(at()), "to": iso(at(hours=2))}
    items = client.get(f"/v1/devices/{EUI}/readings", params=params).json()["items"]
    return [item["value"] for item in items]


def test_observations_are_rendered_as_the_rest_api_renders_readings(
    client: TestClient, conn: psycopg.Connection
) -> None:
    temperature = datastream(client, "temperature")
    series = client.get(f"{STA}/Datastreams({temperature})/Observations").json()["value"]
    everything = client.get(f"{STA}/Observations").json()["value"]
    selected = client.get(f"{STA}/Observations", params={"$select": "result"}).json()["value"]
    expanded = client.get(
        f"{STA}/Things", params={"$expand": "Datastreams/Observations($select=result)"}
    ).json()["value"][0]["Datastreams"]
    oid = series[0]["@iot.id"]
    by_id = client.get(f"{STA}/Observations({oid})").json()
    prop = client.get(f"{STA}/Observations({oid})/result").json()
    raw = client.get(f"{STA}/Observations({oid})/result/$value").text

    assert [o["result"] for o in series] == rest_values(client, "temperature") == [7.155, 7.2, 7.1]
    assert sorted(o["result"] for o in everything) == [3.3, 7.1, 7.155, 7.2]
    assert sorted(o["result"] for o in selected) == [3.3, 7.1, 7.155, 7.2]
    assert sorted(o["result"] for d in expanded for o in d["Observations"]) == [
        3.3,
        7.1,
        7.155,
        7.2,
    ]
    assert by_id["result"] == prop["result"] == 7.155 and raw == "7.155"
    stored = conn.execute("SELECT value FROM reading ORDER BY metric, time").fetchall()
    assert stored == [(3.3000000000000003,), *((v,) for v in TEMPERATURES.values())]


@pytest.mark.parametrize("fn", ["avg", "min", "max", "sum", "count", "last"])
def test_aggregates_are_the_rest_apis_of_the_device(client: TestClient, fn: str) -> None:
    temperature = datastream(client, "temperature")
    sta = client.get(
        f"{STA}/Datastreams({temperature})/Observations",
        params={
            "aggregate": "1h",
            "aggregateFn": fn,
            "$filter": f"phenomenonTime ge {iso(at())} and phenomenonTime lt {iso(at(hours=2))}",
        },
    ).json()["value"]
    rest = client.get(
        "/v1/readings/aggregate",
        params={
            "device": EUI,
            "metric": "temperature",
            "fn": fn,
            "bucket": "1h",
            "from": iso(at()),
            "to": iso(at(hours=2)),
        },
    ).json()["series"][0]["points"]

    assert len(sta) == 2
    assert [(p["result"], p["parameters"]["count"]) for p in sta] == [
        (p["value"], p["count"]) for p in rest
    ]
