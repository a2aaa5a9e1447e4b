"""Fixtures of the open-data tests: the demo world on the test's rolled-back connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from opendata_world import BASE_URL, World, build_app, build_world

from datahub.config import Settings


@pytest.fixture
def world(conn: psycopg.Connection) -> World:
    return build_world(conn)


@pytest.fixture
def settings(database: Any, tmp_path: Path) -> Settings:
    settings: Settings = database.settings(
        api={"public_base_url": BASE_URL},
        opendata={"bulk_dir": tmp_path / "bulk"},
        fairshare={"anonymous_requests_per_s": 1_000_000},
    )
    return settings


@pytest.fixture
def client(settings: Settings, conn: psycopg.Connection, world: World) -> TestClient:
    return TestClient(build_app(settings, conn))
