"""API fixtures: an app per test whose connection is the test's rolled-back `conn`."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from api_helpers import API_LIMITS, Seed, build_app
from fastapi import FastAPI
from fastapi.testclient import TestClient


@pytest.fixture
def seed(conn: psycopg.Connection) -> Seed:
    return Seed(conn)


@pytest.fixture
def app(database: Any, conn: psycopg.Connection) -> FastAPI:
    """The API on the test's connection; its lifespan (the pool) is not started."""
    return build_app(database.settings(api=API_LIMITS), conn)


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)
