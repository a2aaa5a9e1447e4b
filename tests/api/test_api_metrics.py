"""GET /v1/metrics, on the tests' catalog and on the real device catalog."""

from __future__ import annotations

from fastapi.testclient import TestClient

import decoders
from datahub.api.app import create_app
from datahub.config import Settings


def test_lists_metrics_with_units_and_profiles(client: TestClient) -> None:
    items = client.get("/v1/metrics").json()["items"]

    assert [(m["name"], m["unit"], m["profiles"]) for m in items] == [
        ("co2", "ppm", ["climate"]),
        ("humidity", "%", ["climate"]),
        ("temperature", "°C", ["climate", "level"]),
        ("water_level", "m", ["level"]),
    ]
    assert items[0]["description"] == "CO2 concentration"


def test_default_catalog_is_the_decoders_package() -> None:
    client = TestClient(create_app(Settings()))

    items = client.get("/v1/metrics").json()["items"]

    assert [m["name"] for m in items] == sorted(decoders.METRICS)
    for item in items:
        assert item["unit"] == decoders.METRICS[item["name"]].unit
        for profile in item["profiles"]:
            mapped = {m.metric for m in decoders.CATALOG[profile].mappings}
            assert item["name"] in mapped
