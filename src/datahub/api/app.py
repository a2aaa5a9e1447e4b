"""The FastAPI application: built by `create_app(settings)`, never at import time."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from anyio import to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

import datahub
from datahub.api import telemetry
from datahub.api.auth import Callers
from datahub.api.deps import Writers
from datahub.api.gate import Gate
from datahub.api.head import HeadAsGet
from datahub.api.metric_index import LiveMetricIndex, MetricIndex
from datahub.api.ops_telemetry import OpsCollector
from datahub.api.params import check_query, declared_parameters
from datahub.api.reads import ReadHeaders, Reads
from datahub.api.replay import KeepAnswers, Replay, answer_response, prune_keys
from datahub.api.replica import CHECK_TIMEOUT_S, ReplicaCollector, ReplicaMonitor
from datahub.api.routes import (
    admin,
    alert_rules,
    audit,
    bulk,
    dashboard,
    datasets,
    dcat,
    devices,
    docs,
    fairshare,
    health,
    latest,
    metrics,
    operations,
    readings,
    summaries,
    tariffs,
    unplaced,
)
from datahub.api.sensorthings import routes as sensorthings
from datahub.api.writer import Writer
from datahub.catalog import open_catalog
from datahub.config import Settings
from datahub.errors import (
    ApiError,
    ServiceUnavailable,
    StorageBusy,
    StorageUnavailable,
    TooManyRequests,
    Unauthorized,
)
from datahub.privacy import View
from datahub.storage import db

logger = logging.getLogger(__name__)

# Seconds a client should wait before retrying while the database is down.
RETRY_AFTER_S = 5
# ... and while every connection is in use: requests take milliseconds, so one is free soon.
BUSY_RETRY_AFTER_S = 1
# The challenge of every 401 (RFC 6750): API keys are bearer tokens.
WWW_AUTHENTICATE = 'Bearer realm="datahub"'


def create_app(
    settings: Settings, *, catalog: MetricIndex | LiveMetricIndex | None = None
) -> FastAPI:
    """Build the API; its lifespan opens the connection pools and the writers, and closes
    them.

    `catalog` defaults to the device catalog of the settings: the `decoders` package, and
    the codec directory (`catalog.codecs_dir`) as it changes while the API runs.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The pools do not wait for the database: the API starts while it is down and
        # answers 503 until it is back.
        reader = db.open_pool(settings, name="api", autocommit=True)
        # The same for reads made on the event loop (deps.LoopConn).
        reader_loop = await db.open_async_pool(settings, name="api-loop")
        # The writers' pool prepares no statement: it may go through PgBouncer in
        # transaction mode, which keeps none from one transaction to the next.
        writer = db.open_pool(settings, name="api-writer", prepare=False)
        writers = Writers(
            rates=Writer(writer, name="rate-writer", durable=False),
            ledger=Writer(writer, name="ledger-writer", durable=True),
        )
        replica = monitor = replica_loop = None
        if settings.replica_conninfo is not None:
            replica = db.open_pool(
                settings,
                name="api-replica",
                conninfo=settings.replica_conninfo,
                autocommit=True,
                check_timeout_s=CHECK_TIMEOUT_S,
            )
            replica_loop = await db.open_async_pool(
                settings,
                name="api-replica-loop",
                conninfo=settings.replica_conninfo,
                check_timeout_s=CHECK_TIMEOUT_S,
            )
            monitor = ReplicaMonitor(settings)
            monitor.start()
            collectors.register(collector := ReplicaCollector(monitor))
        reads = Reads(
            settings,
            primary=reader,
            replica=replica,
            monitor=monitor,
            primary_loop=reader_loop,
            replica_loop=replica_loop,
        )
        app.state.reader_pool, app.state.writer_pool, app.state.writers = reader, writer, writers
        app.state.reads = reads
        # Sync routes run in this thread pool: a thread for every request the gate lets
        # in (api/gate.py), so that an admitted request waits for a connection only.
        to_thread.current_default_thread_limiter().total_tokens = (
            settings.database.pool_size + settings.database.pool_queue
        )
        # Built now rather than by the first request, which it would hold up (~1 s here).
        app.state.declared_parameters = declared_parameters(app)
        # What start-up made (routes, models, the catalog) lives as long as the process:
        # moved out of the collector's sight, a full collection no longer walks it, which
        # took ~70 ms every dozen requests of thousands of items.
        gc.collect()
        gc.freeze()
        pruning = asyncio.create_task(
            prune_keys(writer, kept_s=settings.fairshare.idempotency_keys_kept_s)
        )
        try:
            yield
        finally:
            pruning.cancel()
            gc.unfreeze()
            # Close what this lifespan opened, whatever `app.state` holds by now.
            for one in (writers.rates, writers.ledger):
                assert isinstance(one, Writer)
                one.close()
            if monitor is not None and replica is not None:
                collectors.unregister(collector)
                monitor.close()
                replica.close()
            if replica_loop is not None:
                await replica_loop.close()
            writer.close()
            reader.close()
            await reader_loop.close()
            if app.state.writers is writers:
                app.state.reader_pool = app.state.writer_pool = app.state.writers = None
                app.state.reads = None

    app = FastAPI(
        title="datahub",
        version=datahub.__version__,
        description="Sensor readings of the LoRaWAN networks of Dortmund and Schwerte. "
        "Times are RFC 3339: queries need an offset (`Z` or `+02:00`), answers are UTC. "
        'Every error is JSON: `{"error": "ClassName", "detail": "…"}`.',
        lifespan=lifespan,
        dependencies=[Depends(check_query)],
        # Served by routes/docs.py from the package, not from a CDN; no ReDoc.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    # What metering takes for the time of a request; tests move it through the months.
    app.state.clock = lambda: datetime.now(UTC)
    if catalog is None:
        catalog = (
            LiveMetricIndex(open_catalog(settings))
            if settings.catalog.codecs_dir is not None
            else MetricIndex.from_decoders()
        )
    app.state.metric_index = catalog
    app.state.reader_pool = app.state.writer_pool = app.state.writers = None
    app.state.reads = None
    app.state.callers = Callers(settings.fairshare.key_cache_s)
    app.state.privacy_view = View.of(settings.privacy)
    app.state.gate = Gate(
        connections=settings.database.pool_size, queue=settings.database.pool_queue
    )
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
        audit,
        alert_rules,
        unplaced,
        operations,
        dashboard,
        docs,
        sensorthings,
    ):
        app.include_router(module.router)
    if settings.replica_conninfo is not None:
        app.add_middleware(ReadHeaders)
    app.add_middleware(
        KeepAnswers,
        max_bytes=settings.fairshare.idempotency_answer_max_bytes,
        render_error=api_error_response,
    )
    # Outside KeepAnswers: the status counted is the one sent, a charge's refusal included.
    app.state.request_telemetry = telemetry.instrument(app)
    collectors = app.state.request_telemetry.collectors
    collectors.register(OpsCollector(app))
    app.add_middleware(HeadAsGet)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(Replay, _replay)
    app.add_exception_handler(StorageUnavailable, _storage_unavailable)
    app.add_exception_handler(StorageBusy, _storage_busy)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    return app


def _error(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def api_error_response(exc: ApiError) -> JSONResponse:
    """Render an ApiError as JSON, with the headers its status calls for."""
    headers = None
    if isinstance(exc, ServiceUnavailable):
        headers = {"Retry-After": str(RETRY_AFTER_S)}
    elif isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
    elif isinstance(exc, Unauthorized):
        # RFC 9110, 15.5.2: a 401 names the scheme that would be accepted.
        headers = {"WWW-Authenticate": WWW_AUTHENTICATE}
    return _error(exc.status, type(exc).__name__, exc.detail, headers)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return api_error_response(exc)


async def _replay(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Replay)
    return answer_response(exc.answer, replayed=True)


async def _storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning(
        "database unavailable on %s %s: %s (%s)",
        request.method,
        request.url.path,
        exc,
        exc.__cause__,
        extra={"stage": "api", "method": request.method, "path": request.url.path},
    )
    return _error(
        ServiceUnavailable.status,
        ServiceUnavailable.__name__,
        f"{exc}; retry in {RETRY_AFTER_S} s",
        {"Retry-After": str(RETRY_AFTER_S)},
    )


async def _storage_busy(request: Request, exc: Exception) -> JSONResponse:
    # Not the database's fault: more requests at once than connections and queue hold.
    return _error(
        TooManyRequests.status,
        TooManyRequests.__name__,
        f"the API is busy: {exc}; retry in {BUSY_RETRY_AFTER_S} s",
        {"Retry-After": str(BUSY_RETRY_AFTER_S)},
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
