"""Fixtures of the ingest tests on a database: the demo scenario, its registry and settings."""

from __future__ import annotations

import psycopg
import pytest
from democatalog import demo_catalog_settings
from ingest_builders import SOURCES, register
from realservices import Database

import simulators
from datahub.config import Settings


@pytest.fixture(scope="session")
def scenario() -> simulators.Scenario:
    return simulators.load_scenario()


@pytest.fixture
def settings(database: Database) -> Settings:
    # The demo's catalog: its registry names a JavaScript-codec profile of deploy/codecs.
    return database.settings(sources=SOURCES, catalog=demo_catalog_settings())


@pytest.fixture
def registered(conn: psycopg.Connection, scenario: simulators.Scenario) -> None:
    """Register every device of the demo scenario."""
    register(conn, scenario)
