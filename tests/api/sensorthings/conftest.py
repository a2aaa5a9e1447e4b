"""SensorThings fixtures: the API app without an anonymous rate limit (the suite's resource
path walk asks hundreds of paths in a second), on the test's rolled-back connection."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from api_helpers import API_LIMITS, build_app
from fastapi import FastAPI

UNLIMITED = {"anonymous_requests_per_s": 1_000_000, "consumer_requests_per_s": 1_000_000}


@pytest.fixture
def app(database: Any, conn: psycopg.Connection) -> FastAPI:
    return build_app(database.settings(api=API_LIMITS, fairshare=UNLIMITED), conn)
