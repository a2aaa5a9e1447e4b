"""Connections: the pool both processes use, and the translation of driver errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from psycopg.types.array import ListBinaryDumper
from psycopg.types.json import set_json_dumps
from psycopg_pool import ConnectionPool, PoolTimeout

from datahub.config import Settings
from datahub.errors import StorageBusy, StorageUnavailable

# Errors that mean "the database is not there right now", as opposed to a bug in a query.
UNAVAILABLE = (psycopg.OperationalError, psycopg.errors.AdminShutdown, PoolTimeout)


def connect(
    settings: Settings, *, autocommit: bool = False, batch_writes: bool = False
) -> psycopg.Connection:
    """Open one connection with the configured timeouts.

    With `batch_writes`, list parameters (the `unnest(%s::…[])` of batch writes) are sent
    in binary, which costs about a quarter of the Python time of psycopg's default text
    arrays (those took a quarter of an ingest worker's main thread), and JSON parameters
    are written by orjson, several times faster than the standard library (it writes NaN
    as null where the standard library writes NaN, which PostgreSQL refuses).
    """
    try:
        conn = psycopg.connect(
            settings.conninfo,
            autocommit=autocommit,
            connect_timeout=max(1, round(settings.database.connect_timeout_s)),
            options=f"-c statement_timeout={settings.database.statement_timeout_ms}",
            application_name="datahub",
        )
    except UNAVAILABLE as exc:
        raise StorageUnavailable(f"database unreachable: {exc}") from exc
    if batch_writes:
        conn.adapters.register_dumper(list, ListBinaryDumper)
        set_json_dumps(orjson.dumps, conn)
    return conn


def open_pool(
    settings: Settings,
    *,
    name: str,
    max_size: int | None = None,
    autocommit: bool = False,
    prepare: bool = True,
) -> ConnectionPool:
    """Open a connection pool that does not wait for the database to be up.

    A borrower waits at most `database.pool_timeout_s` for a connection (see `lend`); how
    many may wait is bounded by the API (api/gate.py). `autocommit` connections commit
    each statement on their own (no BEGIN, no COMMIT: for reads). Without `prepare`, no
    statement is prepared on the server, as a pooler in transaction mode (PgBouncer)
    requires.
    """
    size = max_size or settings.database.pool_size
    kwargs: dict[str, Any] = {
        "connect_timeout": max(1, round(settings.database.connect_timeout_s)),
        "options": f"-c statement_timeout={settings.database.statement_timeout_ms}",
        "application_name": f"datahub-{name}",
        "autocommit": autocommit,
    }
    if not prepare:
        kwargs["prepare_threshold"] = None
    return ConnectionPool(
        settings.conninfo,
        min_size=1,
        max_size=size,
        name=name,
        timeout=settings.database.pool_timeout_s,
        kwargs=kwargs,
        check=ConnectionPool.check_connection,
        # open=True starts the workers without waiting for a first connection.
        open=True,
    )


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
