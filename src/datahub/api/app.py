"""The FastAPI application: built by `create_app(settings)`, never at import time."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

import datahub
from datahub.api import telemetry
from datahub.api.catalog import MetricCatalog
from datahub.api.routes import (
    admin,
    bulk,
    dashboard,
    datasets,
    dcat,
    devices,
    fairshare,
    health,
    latest,
    metrics,
    readings,
    summaries,
    tariffs,
)
from datahub.config import Settings
from datahub.errors import ApiError, ServiceUnavailable, StorageUnavailable, TooManyRequests
from datahub.storage import db

logger = logging.getLogger(__name__)

# Seconds a client should wait before retrying while the database is down.
RETRY_AFTER_S = 5


def create_app(settings: Settings, *, catalog: MetricCatalog | None = None) -> FastAPI:
    """Build the API; its lifespan opens the connection pool and closes it.

    `catalog` defaults to the device catalog of the `decoders` package.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The pool does not wait for the database: the API starts while it is down and
        # answers 503 until it is back.
        pool = db.open_pool(settings, name="api")
        app.state.pool = pool
        # What start-up made (routes, models, the catalog) lives as long as the process:
        # moved out of the collector's sight, a full collection no longer walks it, which
        # took ~70 ms every dozen requests of thousands of items.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            # Close the pool this lifespan opened, whatever `app.state` holds by now.
            pool.close()
            if app.state.pool is pool:
                app.state.pool = None

    app = FastAPI(
        title="datahub",
        version=datahub.__version__,
        description="Sensor readings of the LoRaWAN networks of Dortmund and Schwerte. "
        "Times are RFC 3339: queries need an offset (`Z` or `+02:00`), answers are UTC. "
        'Every error is JSON: `{"error": "ClassName", "detail": "…"}`.',
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.catalog = catalog if catalog is not None else MetricCatalog.from_decoders()
    app.state.pool = None
    for module in (
        health,
        metrics,
        datasets,
        devices,
        readings,
        latest,
        tariffs,
        fairshare,
        dcat,
        bulk,
        summaries,
        admin,
        dashboard,
    ):
        app.include_router(module.router)
    app.state.request_metrics = telemetry.instrument(app)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StorageUnavailable, _storage_unavailable)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    return app


def _error(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = None
    if isinstance(exc, ServiceUnavailable):
        headers = {"Retry-After": str(RETRY_AFTER_S)}
    elif isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
    return _error(exc.status, type(exc).__name__, exc.detail, headers)


async def _storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning(
        "database unavailable on %s %s: %s",
        request.method,
        request.url.path,
        exc,
        extra={"stage": "api", "method": request.method, "path": request.url.path},
    )
    return _error(
        ServiceUnavailable.status,
        ServiceUnavailable.__name__,
        f"the database is unavailable; retry in {RETRY_AFTER_S} s",
        {"Retry-After": str(RETRY_AFTER_S)},
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = "; ".join(_describe(error) for error in exc.errors())
    return _error(422, "ValidationError", detail)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette's own errors: no such route (404), method not allowed (405).
    assert isinstance(exc, HTTPException)
    name = HTTPStatus(exc.status_code).phrase.title().replace(" ", "").replace("-", "")
    return _error(exc.status_code, name, str(exc.detail), dict(exc.headers or {}))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception(
        "unexpected error on %s %s",
        request.method,
        request.url.path,
        extra={"stage": "api", "method": request.method, "path": request.url.path},
    )
    return _error(500, "InternalError", "an unexpected error occurred; it has been logged")


def _describe(error: Any) -> str:
    """Say which parameter is wrong and what it accepts, from one pydantic error."""
    location = [str(part) for part in error.get("loc", ())]
    where = location[0] if location else "request"
    name = ".".join(location[1:]) or "body"
    kind = error.get("type")
    if kind == "missing":
        return f"{where} parameter {name!r} is required"
    if kind == "extra_forbidden":
        return f"{where} parameter {name!r} is not a parameter of this endpoint"
    if kind == "value_error" and "error" in error.get("ctx", {}):
        # Our own validators' messages quote the input already.
        return f"{where} parameter {name!r}: {error['ctx']['error']}"
    return (
        f"{where} parameter {name!r}: {error.get('msg', 'is invalid')}, got {error.get('input')!r}"
    )
