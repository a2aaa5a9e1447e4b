"""The API's dependencies, the only place that calls `Depends`.

Those that do no I/O are `async def`: FastAPI runs a plain `def` dependency in its thread
pool, one hand-over to a worker thread and back per dependency and request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool

from datahub.api import auth
from datahub.api.auth import Access, Scope
from datahub.api.catalog import LiveCatalog, MetricCatalog
from datahub.api.metering import Meter, check_idempotency_key
from datahub.config import Settings
from datahub.errors import Forbidden, StorageUnavailable
from datahub.storage import db


async def get_settings(request: Request) -> Settings:
    """Return the settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_catalog(request: Request) -> MetricCatalog:
    """Return the device catalog's metrics and profiles, as the codec directory is now."""
    catalog: MetricCatalog | LiveCatalog = request.app.state.catalog
    if not isinstance(catalog, LiveCatalog):
        return catalog
    if catalog.changed():  # a few stat calls every 2 s; the reload, rarely, off the loop
        return await run_in_threadpool(catalog.reload)
    return catalog.current


Lender = Callable[[], AbstractContextManager[psycopg.Connection]]


async def get_lender(request: Request) -> Lender:
    """Return what lends a pooled connection for one short transaction of its own."""
    pool: ConnectionPool | None = getattr(request.app.state, "pool", None)
    if pool is None:
        raise StorageUnavailable("the connection pool is not open")
    return lambda: db.transaction(pool)


async def get_statements_lender(request: Request) -> Lender:
    """Return what lends a pooled connection whose statements each commit on their own."""
    pool: ConnectionPool | None = getattr(request.app.state, "pool", None)
    if pool is None:
        raise StorageUnavailable("the connection pool is not open")
    return lambda: db.statements(pool)


# For the OpenAPI document: both ways of presenting a key. The raw headers are read
# below, so that a malformed Authorization header is an error, not an anonymous call.
_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer dh_…`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")
# `openapi_extra` of the routes that answer anonymous callers too: FastAPI lists the key
# schemes as the operation's security, and an empty requirement beside them makes the key
# optional (OpenAPI 3.1, "Security Requirement Object").
ANONYMOUS_TOO: dict[str, object] = {"security": [{}]}


def get_access(
    request: Request,
    lend: Annotated[Lender, Depends(get_statements_lender)],
    _bearer_doc: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _key_doc: Annotated[str | None, Depends(_api_key)],
) -> Access:
    """Resolve the caller and take a slot of its rate limit, on a connection of its own.

    Each statement commits on its own (the key lookup reads, the rate slot's upsert commits
    at once and holds its row lock no longer). 401 for a malformed, unknown or revoked
    key; 429 over the rate limit.
    """
    settings: Settings = request.app.state.settings
    secret = auth.presented_key(
        request.headers.get("authorization"), request.headers.get("x-api-key")
    )
    client = request.client.host if request.client else "unknown"
    with lend() as conn:
        caller = auth.authenticate(conn, secret=secret, client=client, settings=settings.fairshare)
    request.state.access = caller
    return caller


async def get_reader(caller: Annotated[Access, Depends(get_access)]) -> Access:
    """Require the `read` scope (every key has it unless made for administration only)."""
    caller.require(Scope.READ)
    return caller


async def get_admin(caller: Annotated[Access, Depends(get_access)]) -> Access:
    """Require the `admin` scope: 403 otherwise."""
    caller.require(Scope.ADMIN)
    return caller


async def get_operator(caller: Annotated[Access, Depends(get_access)]) -> Access:
    """Require an `admin` key, or a key of a consumer acting for a supplier (which sees that
    supplier's devices only): 403 otherwise."""
    if not caller.is_admin and caller.supplier_id is None:
        raise Forbidden("the operator views need an admin key or the key of a supplier")
    return caller


def get_conn(
    lend: Annotated[Lender, Depends(get_lender)],
    _caller: Annotated[Access, Depends(get_access)],
) -> Iterator[psycopg.Connection]:
    """Lend a pooled connection for the request's transaction: commit on success, roll back
    on error.

    The caller is resolved first, on a connection of its own that is back in the pool
    before this one is lent: a request never holds two, so concurrent requests cannot
    starve the pool. A pool that cannot lend a connection in time, or a connection lost
    mid-request, raises `StorageUnavailable` (503).
    """
    with lend() as conn:
        yield conn


def get_probe_conn(lend: Annotated[Lender, Depends(get_lender)]) -> Iterator[psycopg.Connection]:
    """Lend a pooled connection to a health probe, which needs no caller and no rate limit."""
    with lend() as conn:
        yield conn


async def get_meter(
    request: Request,
    caller: Annotated[Access, Depends(get_reader)],
    conn: Annotated[psycopg.Connection, Depends(get_conn, scope="function")],
) -> Meter:
    """Make the meter of one request that serves observations, in the request's transaction.

    An `Idempotency-Key` header makes a retry of the same request count once.
    """
    route = request.scope.get("route")
    endpoint = getattr(route, "path", request.url.path)
    query = "&".join(sorted(request.url.query.split("&"))) if request.url.query else ""
    meter = Meter(
        conn=conn,
        caller=caller,
        endpoint=endpoint,
        fingerprint=f"{request.method} {request.url.path}?{query}",
        idempotency_key=check_idempotency_key(request.headers.get("idempotency-key")),
    )
    request.state.meter = meter
    return meter


SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogDep = Annotated[MetricCatalog, Depends(get_catalog)]
# scope="function": the transaction ends (and commits) before the response is sent, so a
# failed commit can still answer with an error.
Conn = Annotated[psycopg.Connection, Depends(get_conn, scope="function")]
ProbeConn = Annotated[psycopg.Connection, Depends(get_probe_conn, scope="function")]
# Any caller, a key of any scope or anonymous (routes that decide by scope themselves).
Caller = Annotated[Access, Depends(get_access)]
Reader = Annotated[Access, Depends(get_reader)]
Admin = Annotated[Access, Depends(get_admin)]
# An administrator, or a supplier's key (Access.supplier_id: its devices only).
Operator = Annotated[Access, Depends(get_operator)]
Metered = Annotated[Meter, Depends(get_meter)]
