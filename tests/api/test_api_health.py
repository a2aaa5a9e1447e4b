"""Health checks and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

import datahub


def test_health_reports_database_and_timescaledb(client: TestClient, database: Any) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    if database.backend == "timescaledb":
        assert body["timescaledb"].startswith("2.")
    else:
        assert body["timescaledb"] is None


def test_live_and_ready(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}
    assert client.get("/health/ready").json() == {
        "status": "ok",
        "reads": "primary",
        "replica": None,
    }


def test_openapi_documents_every_route_and_its_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    assert spec["info"] == {
        "title": "datahub",
        "version": datahub.__version__,
        "description": spec["info"]["description"],
    }
    assert set(spec["paths"]) >= {
        "/health",
        "/health/live",
        "/health/ready",
        "/v1/metrics",
        "/v1/devices",
        "/v1/devices/{dev_eui}",
        "/v1/devices/{dev_eui}/readings",
        "/v1/readings/aggregate",
        "/v1/latest",
        "/v1/datasets",
    }
    error_ref = "#/components/schemas/ErrorOut"
    operations = [(p, op) for p, item in spec["paths"].items() for op in item.values()]
    for path, operation in operations:
        assert operation["description"], path
        for status, response in operation["responses"].items():
            # Errors, 4xx and 5xx; a 304 (a bulk file not modified) has no body.
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": error_ref}, (path, status)
    assert "HTTPValidationError" not in spec["components"]["schemas"]


@pytest.mark.parametrize(
    ("path", "statuses"),
    [
        (
            "/v1/devices/{dev_eui}/readings",
            {"400", "401", "404", "409", "410", "422", "429", "500", "503"},
        ),
        (
            "/v1/readings/aggregate",
            {"400", "401", "404", "409", "410", "422", "429", "500", "503"},
        ),
        ("/v1/latest", {"400", "401", "409", "422", "429", "500", "503"}),
    ],
)
def test_series_routes_document_csv_and_errors(
    client: TestClient, path: str, statuses: set[str]
) -> None:
    operation = client.get("/openapi.json").json()["paths"][path]["get"]

    assert set(operation["responses"]) == {"200", *statuses}
    assert "text/csv" in operation["responses"]["200"]["content"]
