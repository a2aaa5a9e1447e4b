"""Fixtures on real services: the local TimescaleDB, plain PostgreSQL 15 and Mosquitto.

Database tests run once per backend: TimescaleDB and plain PostgreSQL, each migrated by
Alembic once per session, with a rollback per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from realservices import BACKENDS, Database, temporary_database


@pytest.fixture(scope="session", params=sorted(BACKENDS))
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A database migrated once per session, on each backend in turn."""
    with temporary_database(request.param, f"datahub_test_{request.param}") as database:
        yield database


@pytest.fixture
def conn(database: Database) -> Iterator[psycopg.Connection]:
    """A connection whose work is rolled back after the test."""
    with psycopg.connect(database.url) as connection:
        yield connection
        connection.rollback()
