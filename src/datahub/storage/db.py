"""Connections: the pool both processes use, and the translation of driver errors.

The API's hottest reads run on the event loop, on asynchronous connections (`open_async_pool`,
`alend`), the rest on threads: a `Statement` runs on either, written once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

import orjson
import psycopg
from psycopg import sql
from psycopg.abc import PQGen
from psycopg.rows import TupleRow
from psycopg.types.array import ListBinaryDumper
from psycopg.types.json import set_json_dumps
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from datahub.config import Settings
from datahub.errors import StorageBusy, StorageUnavailable

log = logging.getLogger(__name__)

RV = TypeVar("RV")
T = TypeVar("T")
APPLICATION_NAME = "datahub"  # as pg_stat_activity shows our sessions
_WAIT_INTERVAL_S = 0.1  # psycopg's own: how often a wait looks up from select()

# Errors that mean "the database is not there right now", as opposed to a bug in a query.
UNAVAILABLE = (psycopg.OperationalError, psycopg.errors.AdminShutdown, PoolTimeout)
# Among them, a statement the server cancelled for a conflict with another's change: a
# replica's recovery conflict (40001, or 40P01 against a buffer pin), or a deadlock. The
# database is there; the same work again will most likely succeed.
CONFLICTS = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)


class NoResponse(psycopg.OperationalError):
    """The server did not answer within `database.response_timeout_s`; the connection is
    closed, as it is in an unknown state."""


class _Bounded:
    """What ends the server session of a connection that stopped answering, and the bound
    on its waits (`BoundedConnection`, `AsyncBoundedConnection`)."""

    response_timeout_s: float | None = None
    # Set by `_bind`: what ends this connection's server session should it stop answering.
    _settings: Settings | None = None
    _conninfo = ""
    _server_pid = 0
    _application_name = ""
    _opened_at = 0.0

    def _bind(
        self, settings: Settings, application_name: str, conninfo: str, server_pid: int
    ) -> None:
        self.response_timeout_s = settings.database.response_timeout_s
        self._settings = None if settings.database.transaction_pooling else settings
        self._conninfo = conninfo
        self._server_pid = server_pid
        self._application_name = application_name
        self._opened_at = time.monotonic()

    def _gave_up(self, pgconn: Any, limit: float) -> NoResponse:
        """Close a connection that did not answer within `limit`; return the error to raise.

        Halfway through the protocol: the connection can never be used again.
        """
        pgconn.finish()
        return NoResponse(f"no answer from the database within {limit:g} s: connection closed")

    def _end_server_session(self) -> None:
        if self._settings is None:
            return
        try:
            with connect(self._settings, conninfo=self._conninfo, autocommit=True) as conn:
                conn._settings = None  # should this one freeze too, no more of this
                ended = end_session(
                    conn,
                    pid=self._server_pid,
                    application_name=self._application_name,
                    opened_s_ago=time.monotonic() - self._opened_at,
                )
        except (StorageUnavailable, psycopg.Error) as exc:
            log.warning(
                "could not end the server session %d of a connection that stopped "
                "answering (%s); it ends when the server notices",
                self._server_pid,
                exc,
            )
            return
        if ended:
            log.warning(
                "ended the server session %d of a connection that stopped answering",
                self._server_pid,
            )


class BoundedConnection(_Bounded, psycopg.Connection[TupleRow]):
    """A connection whose every wait for the server ends within `response_timeout_s`.

    A connection can freeze without being closed: after a failover, or behind a proxy or
    firewall that stops forwarding, no FIN or RST ever comes, the kernel may even go on
    acknowledging what is sent, and neither TCP keepalives nor `tcp_user_timeout` fire. The
    server's `statement_timeout` cannot help either: the statement never reaches it. Every
    wait of psycopg (a statement, a COPY, a commit) goes through `wait`, so bounding it here
    bounds them all, on the client's side.

    Closing such a connection is not enough: behind a stuck proxy its server session lives
    on, in its transaction, holding its locks (the dedup keys of the batch that is about to
    be retried), and neither `statement_timeout` (not while a COPY waits for data) nor
    `idle_in_transaction_session_timeout` (not during a COPY) ends it. So the session is
    ended through a new connection to the same server (`end_session`). Not through a
    pooler in transaction mode: a client's connection there has no session of its own
    (the pooler's `query_timeout` ends stuck server connections).
    """

    def wait(
        self, gen: PQGen[RV], interval: float = _WAIT_INTERVAL_S, timeout: float | None = None
    ) -> RV:
        limit = self.response_timeout_s
        if timeout is not None or limit is None:
            return super().wait(gen, interval, timeout)
        started = time.monotonic()
        try:
            return super().wait(gen, interval, limit)
        except psycopg.OperationalError:
            if time.monotonic() - started < limit:
                raise
            error = self._gave_up(self.pgconn, limit)
            self._end_server_session()
            raise error from None


class AsyncBoundedConnection(_Bounded, psycopg.AsyncConnection[TupleRow]):
    """`BoundedConnection` for the event loop: the same bound on every wait, the same end
    of a frozen connection's server session (made in a thread: it is rare, and blocks)."""

    async def wait(
        self, gen: PQGen[RV], interval: float = _WAIT_INTERVAL_S, timeout: float | None = None
    ) -> RV:
        limit = self.response_timeout_s
        if timeout is not None or limit is None:
            return await super().wait(gen, interval, timeout)
        started = time.monotonic()
        try:
            return await super().wait(gen, interval, limit)
        except psycopg.OperationalError:
            if time.monotonic() - started < limit:
                raise
            error = self._gave_up(self.pgconn, limit)
            await asyncio.to_thread(self._end_server_session)
            raise error from None


def end_session(
    conn: psycopg.Connection, *, pid: int, application_name: str, opened_s_ago: float
) -> bool:
    """End the server session of one of our connections; return whether it was running.

    The pid alone could by now be another session's: the session must also be ours (role,
    application name) and have started no later than the connection was opened.
    """
    row = conn.execute(
        """
        SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE pid = %(pid)s AND usename = current_user AND application_name = %(name)s
          AND backend_start <= now() - make_interval(secs => %(age)s)
        """,
        # A second for the way from the client's clock to the server's.
        {"pid": pid, "name": application_name, "age": max(opened_s_ago - 1.0, 0.0)},
    ).fetchone()
    return bool(row and row[0])


def _libpq_options(settings: Settings) -> dict[str, Any]:
    """Timeouts and TCP settings of every connection (libpq parameters), and what a pooler
    in transaction mode requires (`database.transaction_pooling`).

    PgBouncer refuses the `options` startup parameter, so behind it `statement_timeout`
    is the database role's (`ALTER ROLE … SET statement_timeout`); and a statement
    prepared on a server connection in one transaction is gone, or another client's, in
    the next, so nothing is prepared.
    """
    database = settings.database
    options: dict[str, Any] = {
        "connect_timeout": max(1, round(database.connect_timeout_s)),
        # A peer that vanished (a failover, a cable) is noticed on an idle connection by
        # keepalives, and on a busy one when what was sent goes unacknowledged.
        "keepalives": 1,
        "keepalives_idle": database.keepalive_idle_s,
        "keepalives_interval": database.keepalive_interval_s,
        "keepalives_count": database.keepalive_count,
        "tcp_user_timeout": database.tcp_user_timeout_ms,
    }
    if database.transaction_pooling:
        options["prepare_threshold"] = None
    else:
        options["options"] = f"-c statement_timeout={database.statement_timeout_ms}"
    return options


def connect(
    settings: Settings,
    *,
    conninfo: str | None = None,
    autocommit: bool = False,
    batch_writes: bool = False,
    application_name: str = APPLICATION_NAME,
) -> BoundedConnection:
    """Open one connection with the configured timeouts to `conninfo` (default: the
    primary, `database_url`), named `application_name` in `pg_stat_activity`.

    Every wait for the server is bounded by `database.response_timeout_s`: past it the
    connection is closed and `NoResponse` raised (an OperationalError, so in UNAVAILABLE).

    With `batch_writes`, list parameters (the `unnest(%s::…[])` of batch writes) are sent
    in binary, which costs about a quarter of the Python time of psycopg's default text
    arrays (those took a quarter of an ingest worker's main thread), and JSON parameters
    are written by orjson, several times faster than the standard library (it writes NaN
    as null where the standard library writes NaN, which PostgreSQL refuses).
    """
    target = conninfo or settings.conninfo
    try:
        conn = BoundedConnection.connect(
            target,
            autocommit=autocommit,
            application_name=application_name,
            **_libpq_options(settings),
        )
    except UNAVAILABLE as exc:
        raise StorageUnavailable(f"database unreachable: {exc}") from exc
    conn._bind(settings, application_name, target, conn.info.backend_pid)
    if batch_writes:
        conn.adapters.register_dumper(list, ListBinaryDumper)
        set_json_dumps(orjson.dumps, conn)
    return conn


def open_pool(
    settings: Settings,
    *,
    name: str,
    conninfo: str | None = None,
    max_size: int | None = None,
    autocommit: bool = False,
    prepare: bool = True,
    check_timeout_s: float | None = None,
) -> ConnectionPool[BoundedConnection]:
    """Open a pool of bounded connections to `conninfo` (default: the primary; see
    `connect`) that does not wait for the database to be up.

    A borrower waits at most `database.pool_timeout_s` for a connection (see `lend`); how
    many may wait is bounded by the API (api/gate.py). `autocommit` connections commit
    each statement on their own (no BEGIN, no COMMIT: for reads). Without `prepare` (or
    with `database.transaction_pooling`), no statement is prepared on the server. The
    check of a connection before it is lent waits `check_timeout_s` at most for the
    server (default: `database.response_timeout_s`): behind PgBouncer a server that is
    down holds the check until PgBouncer's `query_wait_timeout`.
    """
    common, bind = _pool_arguments(settings, name, conninfo, max_size, autocommit, prepare)

    return ConnectionPool(
        connection_class=BoundedConnection,
        configure=bind,
        # A connection frozen since it was returned fails this check within the response
        # timeout (or the check's), and the pool replaces it.
        check=ConnectionPool.check_connection
        if check_timeout_s is None
        else partial(_check_within, timeout_s=check_timeout_s),
        # open=True starts the workers without waiting for a first connection.
        open=True,
        **common,
    )


async def open_async_pool(
    settings: Settings,
    *,
    name: str,
    conninfo: str | None = None,
    max_size: int | None = None,
    check_timeout_s: float | None = None,
) -> AsyncConnectionPool[AsyncBoundedConnection]:
    """Open a pool of bounded connections for the event loop, in autocommit, as
    `open_pool` opens one for threads: the same bounds, the same check on lending, and
    no wait for the database to be up."""
    common, bind = _pool_arguments(settings, name, conninfo, max_size, True, True)

    async def configure(conn: AsyncBoundedConnection) -> None:
        bind(conn)

    async def check(conn: AsyncBoundedConnection) -> None:
        with _bound_within(conn, check_timeout_s):
            await AsyncConnectionPool.check_connection(conn)

    pool = AsyncConnectionPool(
        connection_class=AsyncBoundedConnection,
        configure=configure,
        check=check,
        open=False,
        **common,
    )
    await pool.open()  # starts the workers without waiting for a first connection
    return pool


def _pool_arguments(
    settings: Settings,
    name: str,
    conninfo: str | None,
    max_size: int | None,
    autocommit: bool,
    prepare: bool,
) -> tuple[dict[str, Any], Callable[[BoundedConnection | AsyncBoundedConnection], None]]:
    """The arguments both kinds of pool take alike, and what binds each new connection."""
    application_name = f"{APPLICATION_NAME}-{name}"
    target = conninfo or settings.conninfo
    kwargs: dict[str, Any] = {
        **_libpq_options(settings),
        "application_name": application_name,
        "autocommit": autocommit,
    }
    if not prepare:
        kwargs["prepare_threshold"] = None

    def bind(conn: BoundedConnection | AsyncBoundedConnection) -> None:
        conn._bind(settings, application_name, target, conn.info.backend_pid)

    common = {
        "conninfo": target,
        "min_size": 1,
        "max_size": max_size or settings.database.pool_size,
        "name": name,
        "timeout": settings.database.pool_timeout_s,
        "kwargs": kwargs,
    }
    return common, bind


def _check_within(conn: BoundedConnection, *, timeout_s: float) -> None:
    """Check a pooled connection as the pool does, waiting `timeout_s` at most."""
    with _bound_within(conn, timeout_s):
        ConnectionPool.check_connection(conn)


@contextmanager
def _bound_within(conn: _Bounded, timeout_s: float | None) -> Iterator[None]:
    """Let `conn` wait `timeout_s` at most (None: its own bound) for the server meanwhile."""
    bound = conn.response_timeout_s
    if timeout_s is not None:
        conn.response_timeout_s = min(timeout_s, bound) if bound else timeout_s
    try:
        yield
    finally:
        conn.response_timeout_s = bound


@contextmanager
def lend(pool: ConnectionPool) -> Iterator[psycopg.Connection]:
    """Lend a pooled connection; unless it is in autocommit, its transaction commits on
    success and rolls back on error.

    StorageBusy if no connection comes free in time while the database answers, or the
    server cancelled a statement for a conflicting change (`CONFLICTS`);
    StorageUnavailable if it does not answer, or the connection is lost.
    """
    try:
        with pool.connection() as conn:
            yield conn
    except UNAVAILABLE as exc:
        raise _lending_error(pool, exc) from exc


@asynccontextmanager
async def alend(pool: AsyncConnectionPool) -> AsyncIterator[psycopg.AsyncConnection]:
    """Lend a pooled connection for the event loop, in autocommit; errors as `lend`."""
    try:
        async with pool.connection() as conn:
            yield conn
    except UNAVAILABLE as exc:
        # Telling busy from unreachable opens a connection, which blocks: in a thread.
        raise await asyncio.to_thread(_lending_error, pool, exc) from exc


@contextmanager
def lent_errors(pool: ConnectionPool) -> Iterator[None]:
    """Translate the errors of taking a connection from `pool`, or of using one, as `lend`
    does."""
    try:
        yield
    except UNAVAILABLE as exc:
        raise _lending_error(pool, exc) from exc


def _lending_error(
    pool: ConnectionPool | AsyncConnectionPool, exc: Exception
) -> StorageBusy | StorageUnavailable:
    """Tell a busy pool from an unreachable database, in words meant for a client."""
    if isinstance(exc, PoolTimeout):
        # The pool cannot tell "all lent" from "cannot connect": one attempt of our own can.
        if _reachable(pool):
            return StorageBusy(
                f"no database connection came free within {pool.timeout:g} s: all are in use,"
                " serving requests or waiting for the database to answer"
            )
        return StorageUnavailable("the database is unreachable: no connection could be opened")
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return StorageUnavailable("the database did not answer within the statement time-out")
    if isinstance(exc, CONFLICTS):
        return StorageBusy(
            "the database cancelled the statement for a conflicting change (a replica "
            "applying the primary's changes, or a deadlock)"
        )
    return StorageUnavailable("the connection to the database was lost")


def _reachable(pool: ConnectionPool | AsyncConnectionPool) -> bool:
    """Tell whether a new connection to the pool's database can be opened right now."""
    # Our pools are given their target and arguments as they are, never as callables.
    conninfo, kwargs = pool.conninfo, pool.kwargs
    assert isinstance(conninfo, str) and isinstance(kwargs, dict | None)
    try:
        with psycopg.connect(conninfo, **(kwargs or {})):
            return True
    except psycopg.OperationalError:
        return False


Query = str | sql.Composed


@dataclass(frozen=True, slots=True)
class Statement(Generic[T]):
    """A read and what its rows make, run on a connection of either kind: storage writes
    the SQL once for the routes on threads (`run`) and those on the event loop (`run_async`)."""

    query: Query
    params: dict[str, Any] | tuple[Any, ...]
    result: Callable[[list[TupleRow]], T]

    def run(self, conn: psycopg.Connection) -> T:
        return self.result(conn.execute(self.query, self.params).fetchall())

    async def run_async(self, conn: psycopg.AsyncConnection) -> T:
        cursor = await conn.execute(self.query, self.params)
        return self.result(await cursor.fetchall())


def has_timescaledb(conn: psycopg.Connection) -> bool:
    """Tell whether the TimescaleDB extension is installed in this database."""
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return row is not None


def ping(conn: psycopg.Connection) -> None:
    """Run the cheapest possible query."""
    conn.execute("SELECT 1")


class KeptConnection:
    """The one connection a long-running job keeps, opened again after it was lost.

    `get` opens it when there is none (or it was closed); `drop` closes it after a
    failure, so that the next `get` starts afresh.
    """

    def __init__(self, settings: Settings, **options: Any) -> None:
        self._settings = settings
        self._options = options
        self._conn: psycopg.Connection | None = None

    def get(self) -> psycopg.Connection:
        """Return the kept connection, opening one if needed."""
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._settings, **self._options)
        return self._conn

    def drop(self) -> None:
        """Close the kept connection, if any; the next `get` opens a new one."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
