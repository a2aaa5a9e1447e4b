"""Connections bound every wait for the server on the client's side: one frozen without FIN
or RST (a TCP proxy that stops forwarding) is closed within the response timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from realservices import Database
from tcpproxy import TcpProxy

from datahub.config import Settings
from datahub.storage import db


@pytest.fixture
def proxy(database: Database) -> Iterator[TcpProxy]:
    target = urlsplit(database.url)
    assert target.hostname is not None and target.port is not None
    proxy = TcpProxy(target.hostname, target.port)
    yield proxy
    proxy.close()


def _behind(proxy: TcpProxy, database: Database) -> Settings:
    """Settings that reach the database through `proxy`, answers awaited 1 s at most."""
    parts = urlsplit(database.url)
    url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    return Settings(
        database_url=url,  # type: ignore[arg-type]
        database={"response_timeout_s": 1, "statement_timeout_ms": 500},  # type: ignore[arg-type]
    )


def _session_gone(database: Database, pid: int) -> bool:
    with psycopg.connect(database.url, autocommit=True) as direct:
        row = direct.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
        return row.fetchone() == (0,)


def test_a_frozen_connection_is_closed_within_the_response_timeout_and_its_session_ended(
    database: Database, proxy: TcpProxy
) -> None:
    settings = _behind(proxy, database)
    with db.connect(settings) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(8008)")  # held by its open transaction
        pid = conn.info.backend_pid
        proxy.freeze()
        started = time.monotonic()
        with pytest.raises(db.NoResponse, match="no answer from the database within 1 s"):
            db.ping(conn)
        assert time.monotonic() - started < 5
        assert conn.closed
        assert isinstance(db.NoResponse("x"), db.UNAVAILABLE)
    # Behind the proxy its session would live on, holding the lock: it was ended.
    with psycopg.connect(database.url, autocommit=True) as direct:
        assert direct.execute("SELECT pg_try_advisory_lock(8008)").fetchone() == (True,)
    assert _session_gone(database, pid)
    with db.connect(settings, autocommit=True) as fresh:  # new connections get through
        db.ping(fresh)


def test_the_server_cancels_a_slow_statement_before_the_client_gives_up(
    database: Database,
) -> None:
    with pytest.raises(ValueError, match="response_timeout_s must exceed statement_timeout_ms"):
        database.settings(database={"statement_timeout_ms": 30_000, "response_timeout_s": 30})
    settings = database.settings(database={"statement_timeout_ms": 500, "response_timeout_s": 5})
    with db.connect(settings) as conn, pytest.raises(psycopg.errors.QueryCanceled):
        conn.execute("SELECT pg_sleep(2)")


def test_the_event_loop_s_pool_bounds_its_waits_and_replaces_frozen_connections(
    database: Database, proxy: TcpProxy
) -> None:
    """The API's reads on the event loop: a statement on a frozen connection ends within the
    response timeout and its server session is ended; a connection that froze while idle in
    the pool fails the check on lending and another is lent instead."""
    settings = _behind(proxy, database)

    async def scenario() -> tuple[int, int, int, float, float]:
        pool = await db.open_async_pool(settings, name="test-loop", max_size=1)
        try:
            async with db.alend(pool) as conn:
                await conn.execute("SELECT pg_advisory_lock(8009)")  # held by its session
                in_use = conn.info.backend_pid
                proxy.freeze()
                started = time.monotonic()
                with pytest.raises(db.NoResponse, match="within 1 s"):
                    await conn.execute("SELECT 1")
                frozen_s = time.monotonic() - started
            async with db.alend(pool) as conn:  # the closed one was dropped
                await conn.execute("SELECT 1")
                idle = conn.info.backend_pid
            proxy.freeze()  # while it is idle in the pool
            started = time.monotonic()
            async with db.alend(pool) as conn:
                cursor = await conn.execute("SELECT 1")
                assert await cursor.fetchall() == [(1,)]
                fresh = conn.info.backend_pid
            return in_use, idle, fresh, frozen_s, time.monotonic() - started
        finally:
            await pool.close()

    in_use, idle, fresh, frozen_s, replaced_s = asyncio.run(scenario())
    assert frozen_s < 5 and replaced_s < 5
    assert len({in_use, idle, fresh}) == 3
    assert _session_gone(database, in_use)  # and with it its advisory lock
    with psycopg.connect(database.url, autocommit=True) as direct:
        assert direct.execute("SELECT pg_try_advisory_lock(8009)").fetchone() == (True,)
