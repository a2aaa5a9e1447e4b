"""The API's telemetry (Prometheus): requests by route template and status, with latency."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_text import parse_samples


def samples(client: TestClient) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse_samples(response.text)


def test_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    assert client.get("/health/live").status_code == 200
    client.get("/v1/devices/0000000000000000")
    client.get("/v1/devices/FFFFFFFFFFFFFFFF")
    client.get("/no/such/route")

    found = samples(client)

    live = 'datahub_api_requests_total{method="GET",route="/health/live",status="200"}'
    assert found[live] == 1
    one = [k for k in found if 'route="/v1/devices/{dev_eui}"' in k and "requests_total" in k]
    assert sum(found[k] for k in one) == 2  # one label set per template, not per device
    assert found['datahub_api_requests_total{method="GET",route="unmatched",status="404"}'] == 1
    histogram = 'datahub_api_request_seconds_count{method="GET",route="/health/live"}'
    assert found[histogram] == 1


def test_metrics_route_is_not_in_the_openapi_document(client: TestClient) -> None:
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
