"""Fixtures on real services: the local TimescaleDB, plain PostgreSQL 15 and Mosquitto.

Database tests run once per backend: TimescaleDB and plain PostgreSQL, each migrated by
Alembic once per session, with a rollback per test.

A test that needs a service (database, broker, Chromium, a server in a subprocess) carries
the `services` marker; `make test-unit` runs the others. A test that asks for one of
SERVICE_FIXTURES gets the marker here; a module that reaches a service otherwise says so
with `pytestmark = pytest.mark.services`. `make test-unit` points the service URLs at a
closed port, so a test that reaches one without the marker fails there.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from realservices import BACKENDS, Database, temporary_database

# Fixtures that are, or start, a service (tests/faults/conftest.py: a private broker;
# tests/deploy: a replica set, bridged brokers; tests/dashboard: the API and Chromium).
SERVICE_FIXTURES = frozenset({"database", "broker", "brokers", "rs", "stack", "browser", "cli_env"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a service fixture with `services`."""
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


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
