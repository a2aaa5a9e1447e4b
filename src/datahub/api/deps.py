"""The API's dependencies, the only place that calls `Depends`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from psycopg_pool import ConnectionPool

from datahub.api.catalog import MetricCatalog
from datahub.config import Settings
from datahub.errors import StorageUnavailable
from datahub.storage import db


def get_settings(request: Request) -> Settings:
    """Return the settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def get_catalog(request: Request) -> MetricCatalog:
    """Return the device catalog's metrics and profiles."""
    catalog: MetricCatalog = request.app.state.catalog
    return catalog


def get_conn(request: Request) -> Iterator[psycopg.Connection]:
    """Lend a pooled connection for one transaction: commit on success, roll back on error.

    A pool that cannot lend a connection in time, or a connection lost mid-request,
    raises `StorageUnavailable` (503).
    """
    pool: ConnectionPool | None = getattr(request.app.state, "pool", None)
    if pool is None:
        raise StorageUnavailable("the connection pool is not open")
    with db.transaction(pool) as conn:
        yield conn


SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogDep = Annotated[MetricCatalog, Depends(get_catalog)]
# scope="function": the transaction ends (and commits) before the response is sent, so a
# failed commit can still answer with an error.
Conn = Annotated[psycopg.Connection, Depends(get_conn, scope="function")]
