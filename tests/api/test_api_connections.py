"""The real connection dependency: pooled transactions, and 503 when the database is gone."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from api_helpers import TEST_CATALOG
from fastapi.testclient import TestClient

from datahub.api.app import create_app
from datahub.config import Settings
from datahub.storage import db, devices


def pooled_client(settings: Settings) -> TestClient:
    """A client whose app runs its lifespan, so requests borrow from the real pool."""
    return TestClient(create_app(settings, catalog=TEST_CATALOG), raise_server_exceptions=False)


def test_pool_lends_and_takes_back_connections(database: Any) -> None:
    settings = database.settings(database={"pool_size": 2, "connect_timeout_s": 2})

    with pooled_client(settings) as client:
        # More requests than connections, half of them errors: each must return its
        # connection, or the pool runs dry and answers 503.
        statuses = [
            client.get(path).status_code
            for _ in range(5)
            for path in ("/health", "/v1/devices/70B3D57ED0009999", "/v1/devices")
        ]

    assert statuses == [200, 404, 200] * 5


def test_database_unreachable_answers_503_with_retry_after() -> None:
    # Nothing listens on port 1: every connection attempt fails at once. Each request still
    # waits the pool's time-out for a connection before it tells unreachable from busy.
    settings = Settings(
        database_url="postgresql://datahub@127.0.0.1:1/datahub",  # type: ignore[arg-type]
        database={"connect_timeout_s": 0.5, "pool_timeout_s": 1},  # type: ignore[arg-type]
    )

    with pooled_client(settings) as client:
        live = client.get("/health/live")
        responses = [client.get(path) for path in ("/health", "/health/ready", "/v1/devices")]

    assert live.status_code == 200
    for response in responses:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json() == {
            "error": "ServiceUnavailable",
            "detail": "the database is unreachable: no connection could be opened; retry in 5 s",
        }


def test_connection_lost_mid_request_answers_503(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def terminated(conn: psycopg.Connection, **kwargs: object) -> None:
        conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    monkeypatch.setattr(devices, "list_devices", terminated)

    with pooled_client(database.settings()) as client:
        lost = client.get("/v1/devices")
        monkeypatch.undo()
        after = client.get("/v1/devices")

    assert lost.status_code == 503
    assert lost.json() == {
        "error": "ServiceUnavailable",
        "detail": "the connection to the database was lost; retry in 5 s",
    }
    assert after.status_code == 200


def test_a_reading_connection_is_in_autocommit_and_goes_back_after_an_error(
    database: Any,
) -> None:
    settings = database.settings(database={"pool_size": 1, "connect_timeout_s": 2})
    pool = db.open_pool(settings, name="test", autocommit=True)
    try:
        with pytest.raises(psycopg.errors.DivisionByZero), db.lend(pool) as conn:
            conn.execute("SELECT 1 / 0")
        with db.lend(pool) as conn:  # the pool's only connection, usable again
            assert conn.autocommit
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pool.close()


def test_no_connection_free_in_time_is_429_not_503(database: Any) -> None:
    settings = database.settings(database={"pool_size": 1, "pool_timeout_s": 0.5})
    app = create_app(settings, catalog=TEST_CATALOG)

    with TestClient(app, raise_server_exceptions=False) as client:
        held = app.state.reader_pool.getconn()  # the pool's only connection, busy elsewhere
        try:
            busy = client.get("/v1/devices")
        finally:
            app.state.reader_pool.putconn(held)
        after = client.get("/v1/devices")

    assert busy.status_code == 429
    assert busy.headers["retry-after"] == "1"
    assert busy.json() == {
        "error": "TooManyRequests",
        "detail": "the API is busy: no database connection came free within 0.5 s: all are "
        "in use, serving requests or waiting for the database to answer; retry in 1 s",
    }
    assert after.status_code == 200
