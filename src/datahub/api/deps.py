"""The API's dependencies, the only place that calls `Depends`.

Reads and writes go separate ways: `Conn` lends a reading connection in autocommit (no
BEGIN, no COMMIT) where api/reads.py says, the replica while it is fresh enough or the
primary; `PrimaryConn` one of the primary, for the administration, which must read its
own changes; the rate slots and the usage ledger are written by the process's writers
(api/writer.py) and the administration's changes in a `WriteConn` transaction, both on
the writer pool (the primary).

The hottest route (a device's raw readings) reads on the event loop: `LoopConn` lends an
asynchronous connection of the same place, so that none of its round trips needs a
thread (docs/performance.md).

Those that do no I/O are `async def`: FastAPI runs a plain `def` dependency in its thread
pool, one hand-over to a worker thread and back per dependency and request (~0.1 ms of
CPU each here). The caller is resolved in the event loop from what the process remembers
(auth.Callers), its rate slot awaited from the writer without a thread of its own; the
reading connection is taken in a worker thread (taking one may wait) and given back in
the event loop (giving back an idle autocommit connection does not wait).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool

from datahub.api import auth
from datahub.api.auth import Access, Callers
from datahub.api.gate import Gate
from datahub.api.metering import Meter, check_idempotency_key
from datahub.api.metric_index import LiveMetricIndex, MetricIndex
from datahub.api.reads import ReadPlace, Reads
from datahub.api.replay import Replay
from datahub.api.replica import ReplicaStatus
from datahub.api.writer import Writes
from datahub.config import Settings
from datahub.errors import Forbidden, StorageUnavailable, Unauthorized
from datahub.fairshare.keys import Scope
from datahub.privacy import View
from datahub.storage import db
from datahub.storage.usage import Answer


async def get_settings(request: Request) -> Settings:
    """Return the settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_metric_index(request: Request) -> MetricIndex:
    """Return the device catalog's metrics and profiles, as the codec directory is now."""
    metric_index: MetricIndex | LiveMetricIndex = request.app.state.metric_index
    if not isinstance(metric_index, LiveMetricIndex):
        return metric_index
    if metric_index.changed():  # a few stat calls every 2 s; the reload, rarely, off the loop
        return await run_in_threadpool(metric_index.reload)
    return metric_index.current


Lender = Callable[[], AbstractContextManager[psycopg.Connection]]
LoopLender = Callable[[], AbstractAsyncContextManager[psycopg.AsyncConnection]]


@dataclass(frozen=True, slots=True)
class Writers:
    """The writes every request makes: its rate slot, and its usage."""

    rates: Writes
    ledger: Writes


async def admit(request: Request) -> AsyncIterator[None]:
    """Let the request use the database, or answer 429 at once if too many already wait.

    In the event loop, before any thread is taken: a burst past the bound costs nothing.
    """
    gate: Gate = request.app.state.gate
    with gate.admit():
        yield


Admitted = Annotated[None, Depends(admit)]


async def get_reads(request: Request) -> Reads:
    """Return what chooses where the process's reads go."""
    reads: Reads | None = getattr(request.app.state, "reads", None)
    if reads is None:
        raise StorageUnavailable("the connection pool is not open")
    return reads


ReadsDep = Annotated[Reads, Depends(get_reads)]


async def get_replica_status(request: Request) -> ReplicaStatus | None:
    """Return the replica as its monitor last found it; None without a replica."""
    reads: Reads | None = getattr(request.app.state, "reads", None)
    return None if reads is None else reads.status()


ReplicaStatusDep = Annotated[ReplicaStatus | None, Depends(get_replica_status)]


async def get_read_lender(request: Request, reads: ReadsDep, _admitted: Admitted) -> Lender:
    """Return what lends a reading connection, in autocommit, where the request's reads go
    (503 if they must go nowhere: api/reads.py); the answer says where."""
    return _lender(request, reads, reads.place())


async def get_primary_lender(request: Request, reads: ReadsDep, _admitted: Admitted) -> Lender:
    """Return what lends a reading connection of the primary, in autocommit."""
    return _lender(request, reads, reads.primary())


async def get_loop_lender(request: Request, reads: ReadsDep, _admitted: Admitted) -> LoopLender:
    """Return what lends an asynchronous reading connection, in autocommit, for reads made
    on the event loop, where the request's reads go (as `get_read_lender`)."""
    place = reads.place()
    return lambda: reads.lend_async(place, record=_recorder(request))


def _lender(request: Request, reads: Reads, place: ReadPlace) -> Lender:
    return lambda: reads.lend(place, record=_recorder(request))


def _recorder(request: Request) -> Callable[[ReadPlace], None]:
    """What notes the place a request read from, for its answer's headers."""

    def record(used: ReadPlace) -> None:
        request.state.read = used

    return record


async def get_lender(request: Request, _admitted: Admitted) -> Lender:
    """Return what lends a connection of the writer pool for one transaction of its own."""
    pool = _pool(request, "writer")
    return lambda: db.lend(pool)


async def get_writers(request: Request) -> Writers:
    """Return the process's writers of rate slots and usage."""
    writers: Writers | None = getattr(request.app.state, "writers", None)
    if writers is None:
        raise StorageUnavailable("the connection pool is not open")
    return writers


async def get_callers(request: Request) -> Callers:
    """Return the callers this process remembers."""
    callers: Callers = request.app.state.callers
    return callers


def _pool(request: Request, which: str) -> ConnectionPool:
    pool: ConnectionPool | None = getattr(request.app.state, f"{which}_pool", None)
    if pool is None:
        raise StorageUnavailable("the connection pool is not open")
    return pool


# For the OpenAPI document: both ways of presenting a key. The raw headers are read
# below, so that a malformed Authorization header is an error, not an anonymous call.
_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer dh_…`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")
# `openapi_extra` of the routes that answer anonymous callers too: FastAPI lists the key
# schemes as the operation's security, and an empty requirement beside them makes the key
# optional (OpenAPI 3.1, "Security Requirement Object").
ANONYMOUS_TOO: dict[str, object] = {"security": [{}]}


async def get_access(
    request: Request,
    lend: Annotated[Lender, Depends(get_read_lender)],
    writers: Annotated[Writers, Depends(get_writers)],
    callers: Annotated[Callers, Depends(get_callers)],
    _bearer_doc: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _key_doc: Annotated[str | None, Depends(_api_key)],
) -> Access:
    """Resolve the caller and take a slot of its rate limit.

    401 for a malformed, unknown or revoked key; 429 over the rate limit. What the process
    does not remember is read on a reading connection of its own, given back before the
    request's own is lent: a request never holds two, so requests cannot starve the pool.
    """
    settings: Settings = request.app.state.settings
    secret = auth.presented_key(
        request.headers.get("authorization"), request.headers.get("x-api-key")
    )
    client = request.client.host if request.client else "unknown"
    caller = callers.remembered(secret, client=client)
    if caller is None:

        def resolve() -> Access:
            try:
                with lend() as conn:
                    return callers.resolve(conn, secret, settings.fairshare, client=client)
            except Unauthorized:
                place: ReadPlace | None = getattr(request.state, "read", None)
                if place is None or not place.replica:
                    raise
            # A key made a moment ago may not have reached the replica yet.
            reads: Reads = request.app.state.reads
            with reads.lend(reads.primary()) as conn:
                return callers.resolve(conn, secret, settings.fairshare, client=client)

        caller = await run_in_threadpool(resolve)
    await auth.take_rate_slot(caller, rates=writers.rates)
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


async def get_overseer(caller: Annotated[Access, Depends(get_access)]) -> Access:
    """Require the `admin` or the `ombudsman` scope: 401 without a key, 403 with another."""
    if caller.oversees:
        return caller
    need = "this needs an API key with the 'admin' or the 'ombudsman' scope"
    if caller.anonymous:
        raise Unauthorized(f"{need}; none was sent")
    raise Forbidden(need)


async def get_operator(caller: Annotated[Access, Depends(get_access)]) -> Access:
    """Require an `admin` or `ombudsman` key, or a key of a consumer acting for a supplier
    (which sees that supplier's devices only): 403 otherwise."""
    if not caller.oversees and caller.supplier_id is None:
        raise Forbidden("the operator views need an admin key or the key of a supplier")
    return caller


async def get_conn(
    lend: Annotated[Lender, Depends(get_read_lender)],
    _caller: Annotated[Access, Depends(get_access)],
) -> AsyncIterator[psycopg.Connection]:
    """Lend the request's reading connection, in autocommit, once the caller is resolved.

    A pool that cannot lend a connection in time answers 429 while the database is up,
    503 if it is not (storage/db.py); so does a connection lost mid-request.
    """
    async with _lent(lend) as conn:
        yield conn


async def get_primary_conn(
    lend: Annotated[Lender, Depends(get_primary_lender)],
    _caller: Annotated[Access, Depends(get_access)],
) -> AsyncIterator[psycopg.Connection]:
    """Lend a reading connection of the primary, in autocommit, once the caller is
    resolved: for the administration, which must see its own changes at once."""
    async with _lent(lend) as conn:
        yield conn


async def get_loop_conn(
    lend: Annotated[LoopLender, Depends(get_loop_lender)],
    _caller: Annotated[Access, Depends(get_access)],
) -> AsyncIterator[psycopg.AsyncConnection]:
    """Lend the request's reading connection for the event loop, in autocommit, once the
    caller is resolved; errors as `get_conn`."""
    async with lend() as conn:
        yield conn


@asynccontextmanager
async def _lent(lend: Lender) -> AsyncIterator[psycopg.Connection]:
    """Take the connection in a worker thread (taking one may wait); give it back in the
    event loop (giving back an idle autocommit connection does not wait)."""
    lent = lend()
    conn = await run_in_threadpool(lent.__enter__)
    try:
        yield conn
    except BaseException as exc:
        if not lent.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        lent.__exit__(None, None, None)


def get_write_conn(
    lend: Annotated[Lender, Depends(get_lender)],
    caller: Annotated[Access, Depends(get_access)],
) -> Iterator[psycopg.Connection]:
    """Lend a connection of the writer pool for the request's transaction: commit on
    success, roll back on error. For the administration's changes, which every route
    makes through this: an ombudsman's key is refused here (403), whatever the route."""
    if caller.is_ombudsman:
        raise Forbidden("an ombudsman's key reads, and changes nothing")
    with lend() as conn:
        yield conn


def get_probe_conn(
    lend: Annotated[Lender, Depends(get_read_lender)],
) -> Iterator[psycopg.Connection]:
    """Lend a reading connection to a health probe, which needs no caller and no rate limit."""
    with lend() as conn:
        yield conn


async def get_meter(
    request: Request,
    caller: Annotated[Access, Depends(get_reader)],
    writers: Annotated[Writers, Depends(get_writers)],
    lend: Annotated[Lender, Depends(get_read_lender)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> Meter:
    """Make the meter of one request that serves observations.

    A request whose `Idempotency-Key` keeps an answer gets it (api/replay.py) without
    reading anything anew; a key used for another request is a 409.
    """
    route = request.scope.get("route")
    endpoint = getattr(route, "path", request.url.path)
    query = "&".join(sorted(request.url.query.split("&"))) if request.url.query else ""
    meter = Meter(
        ledger=writers.ledger,
        caller=caller,
        endpoint=endpoint,
        fingerprint=f"{request.method} {request.url.path}?{query}",
        idempotency_key=check_idempotency_key(request.headers.get("idempotency-key")),
        serves=not getattr(request.state, "head", False),
        clock=request.app.state.clock,
        keys_kept_s=settings.fairshare.idempotency_keys_kept_s,
    )
    if meter.idempotency_key is not None and meter.serves:

        def look_up() -> Answer | None:
            with lend() as conn:
                return meter.earlier_answer(conn)

        earlier = await run_in_threadpool(look_up)
        if earlier is not None:
            raise Replay(earlier)
    request.state.meter = meter
    return meter


async def get_public_meter(
    request: Request,
    caller: Annotated[Access, Depends(get_access)],
    writers: Annotated[Writers, Depends(get_writers)],
) -> Meter:
    """Make the meter of a request that serves open data to anyone (bulk files, summaries):
    it charges anonymous public-interest use, whoever the caller is, and takes no
    Idempotency-Key."""
    route = request.scope.get("route")
    meter = Meter(
        ledger=writers.ledger,
        caller=caller.as_public(),
        endpoint=getattr(route, "path", request.url.path),
        fingerprint=f"{request.method} {request.url.path}",
        idempotency_key=None,
        serves=not getattr(request.state, "head", False),
    )
    request.state.meter = meter
    return meter


async def get_view(request: Request) -> View:
    """Return what protected devices show of themselves (datahub/privacy.py)."""
    view: View = request.app.state.privacy_view
    return view


SettingsDep = Annotated[Settings, Depends(get_settings)]
ViewDep = Annotated[View, Depends(get_view)]
MetricIndexDep = Annotated[MetricIndex, Depends(get_metric_index)]
# scope="function": the connection goes back before the response is sent.
Conn = Annotated[psycopg.Connection, Depends(get_conn, scope="function")]
# The same, for a route whose reads are made on the event loop.
LoopConn = Annotated[psycopg.AsyncConnection, Depends(get_loop_conn, scope="function")]
PrimaryConn = Annotated[psycopg.Connection, Depends(get_primary_conn, scope="function")]
# scope="function": the transaction ends (and commits) before the response is sent, so a
# failed commit can still answer with an error.
WriteConn = Annotated[psycopg.Connection, Depends(get_write_conn, scope="function")]
# What lends a writer connection on demand, for a read route's occasional write.
WriteLender = Annotated[Lender, Depends(get_lender)]
ProbeConn = Annotated[psycopg.Connection, Depends(get_probe_conn, scope="function")]
# Any caller, a key of any scope or anonymous (routes that decide by scope themselves).
Caller = Annotated[Access, Depends(get_access)]
Reader = Annotated[Access, Depends(get_reader)]
Admin = Annotated[Access, Depends(get_admin)]
# An administrator or the ombudsman: who reads what every supplier and consumer did.
Overseer = Annotated[Access, Depends(get_overseer)]
# An administrator, the ombudsman, or a supplier's key (Access.supplier_id: its devices only).
Operator = Annotated[Access, Depends(get_operator)]
Metered = Annotated[Meter, Depends(get_meter)]
# Open data served to anyone, charged as anonymous public-interest use.
PublicMetered = Annotated[Meter, Depends(get_public_meter)]
