"""The real services the tests run against, and how to get a fresh database on them.

`make test` starts them (deploy/services.sh) and exports their URLs; running pytest by hand
uses the same local defaults.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg

from datahub.config import Settings
from datahub.storage import migrate

BACKENDS = {
    "timescaledb": os.environ.get(
        "DATAHUB_TEST_TSDB_URL", "postgresql://datahub@127.0.0.1:55432/datahub"
    ),
    "postgres": os.environ.get(
        "DATAHUB_TEST_PG_URL", "postgresql://datahub@127.0.0.1:55433/datahub"
    ),
}
BROKER_URL = os.environ.get("DATAHUB_TEST_BROKER_URL", "mqtt://127.0.0.1:18830")


@dataclass(frozen=True)
class Database:
    backend: str
    url: str

    def settings(self, **overrides: object) -> Settings:
        return Settings(database_url=self.url, broker_url=BROKER_URL, **overrides)  # type: ignore[arg-type]


def with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def create_database(server_url: str, dbname: str) -> str:
    """Drop and create a database on the server of `server_url`; return its URL."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{dbname}"')
    return with_dbname(server_url, dbname)


def drop_database(backend: str, dbname: str) -> None:
    with psycopg.connect(BACKENDS[backend], autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@contextmanager
def temporary_database(backend: str, prefix: str) -> Iterator[Database]:
    """A freshly migrated database of this run only, dropped afterwards."""
    # The process id keeps concurrent runs on one server apart.
    dbname = f"{prefix}_{os.getpid()}"
    database = migrated_database(backend, dbname)
    try:
        yield database
    finally:
        drop_database(backend, dbname)


def migrated_database(backend: str, dbname: str) -> Database:
    url = create_database(BACKENDS[backend], dbname)
    database = Database(backend, url)
    migrate.upgrade(database.settings())
    return database
