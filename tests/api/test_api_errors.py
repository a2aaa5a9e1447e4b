"""Errors outside the routes' own checks: unknown routes, unexpected exceptions."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from datahub.storage import devices


def test_unknown_route_is_json(client: TestClient) -> None:
    response = client.get("/v2/devices")

    assert response.status_code == 404
    assert response.json() == {"error": "NotFound", "detail": "Not Found"}


def test_wrong_method_is_json(client: TestClient) -> None:
    response = client.post("/v1/devices")

    assert response.status_code == 405
    assert response.json()["error"] == "MethodNotAllowed"
    assert response.headers["allow"] == "GET"


def test_unexpected_error_is_json_500_and_logged(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(devices, "list_devices", broken)
    client = TestClient(app, raise_server_exceptions=False)

    response = client.get("/v1/devices")

    assert response.status_code == 500
    assert response.json() == {
        "error": "InternalError",
        "detail": "an unexpected error occurred; it has been logged",
    }
    assert "secret internals" not in response.text
    assert "unexpected error on GET /v1/devices" in caplog.text
