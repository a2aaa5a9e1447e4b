"""Connections: the pool both processes use, and the translation of driver errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg.abc import PQGen
from psycopg.rows import TupleRow
from psycopg.types.array import ListBinaryDumper
from psycopg.types.json import set_json_dumps
from psycopg_pool import ConnectionPool, PoolTimeout

from datahub.config import Settings
from datahub.errors import StorageBusy, StorageUnavailable

log = logging.getLogger(__name__)

RV = TypeVar("RV")
APPLICATION_NAME = "datahub"  # as pg_stat_activity shows our sessions
_WAIT_INTERVAL_S = 0.1  # psycopg's own: how often a wait looks up from select()

# Errors that mean "the database is not there right now", as opposed to a bug in a query.
UNAVAILABLE = (psycopg.OperationalError, psycopg.errors.AdminShutdown, PoolTimeout)


class NoResponse(psycopg.OperationalError):
    """The server did not answer within `database.response_timeout_s`; the connection is
    closed, as it is in an unknown state."""


class BoundedConnection(psycopg.Connection[TupleRow]):
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

    response_timeout_s: float | None = None
    # Set by `_bind`: what ends this connection's server session should it stop answering.
    _settings: Settings | None = None
    _conninfo = ""
    _server_pid = 0
    _application_name = ""
    _opened_at = 0.0

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
            # Halfway through the protocol: the connection can never be used again.
            self.pgconn.finish()
            self._end_server_session()
            raise NoResponse(
                f"no answer from the database within {limit:g} s: connection closed"
            ) from None

    def _bind(self, settings: Settings, application_name: str, conninfo: str) -> None:
        self.response_timeout_s = settings.database.response_timeout_s
        self._settings = None if settings.database.transaction_pooling else settings
        self._conninfo = conninfo
        self._server_pid = self.info.backend_pid
        self._application_name = application_name
        self._opened_at = time.monotonic()

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
    conn._bind(settings, application_name, target)
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
    size = max_size or settings.database.pool_size
    application_name = f"{APPLICATION_NAME}-{name}"
    target = conninfo or settings.conninfo
    kwargs: dict[str, Any] = {
        **_libpq_options(settings),
        "application_name": application_name,
        "autocommit": autocommit,
    }
    if not prepare:
        kwargs["prepare_threshold"] = None

    def configure(conn: BoundedConnection) -> None:
        conn._bind(settings, application_name, target)

    return ConnectionPool(
        target,
        connection_class=BoundedConnection,
        min_size=1,
        max_size=size,
        name=name,
        timeout=settings.database.pool_timeout_s,
        kwargs=kwargs,
        configure=configure,
        # A connection frozen since it was returned fails this check within the response
        # timeout (or the check's), and the pool replaces it.
        check=ConnectionPool.check_connection
        if check_timeout_s is None
        else partial(_check_within, timeout_s=check_timeout_s),
        # open=True starts the workers without waiting for a first connection.
        open=True,
    )


def _check_within(conn: BoundedConnection, *, timeout_s: float) -> None:
    """Check a pooled connection as the pool does, waiting `timeout_s` at most."""
    bound = conn.response_timeout_s
    conn.response_timeout_s = min(timeout_s, bound) if bound else timeout_s
    try:
        ConnectionPool.check_connection(conn)
    finally:
        conn.response_timeout_s = bound


@contextmanager
def lend(pool: ConnectionPool) -> Iterator[psycopg.Connection]:
    """Lend a pooled connection; unless it is in autocommit, its transaction commits on
    success and rolls back on error.

    StorageBusy if no connection comes free in time while the database answers;
    StorageUnavailable if it does not, or the connection is lost.
    """
    try:
        with pool.connection() as conn:
            yield conn
    except UNAVAILABLE as exc:
        raise _lending_error(pool, exc) from exc


@contextmanager
def lent_errors(pool: ConnectionPool) -> Iterator[None]:
    """Translate the errors of taking a connection from `pool`, or of using one, as `lend`
    does."""
    try:
        yield
    except UNAVAILABLE as exc:
        raise _lending_error(pool, exc) from exc


def _lending_error(pool: ConnectionPool, exc: Exception) -> StorageBusy | StorageUnavailable:
    """Tell a busy pool from an unreachable database, in words meant for a client."""
    if isinstance(exc, PoolTimeout):
        # The pool cannot tell "all lent" from "cannot connect": one attempt of our own can.
        if _reachable(pool):
            return StorageBusy(
                f"no database connection came free within {pool.timeout:g} s; all are in use"
            )
        return StorageUnavailable("the database is unreachable: no connection could be opened")
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return StorageUnavailable("the database did not answer within the statement time-out")
    return StorageUnavailable("the connection to the database was lost")


def _reachable(pool: ConnectionPool) -> bool:
    """Tell whether a new connection to the pool's database can be opened right now."""
    conninfo = pool.conninfo() if callable(pool.conninfo) else pool.conninfo
    kwargs = pool.kwargs() if callable(pool.kwargs) else pool.kwargs or {}
    try:
        with psycopg.connect(conninfo, **kwargs):
            return True
    except psycopg.OperationalError:
        return False


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
