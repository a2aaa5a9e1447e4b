"""Connections bound every wait for the server on the client's side: one frozen without FIN
or RST (a TCP proxy that stops forwarding) is closed within the response timeout."""

from __future__ import annotations

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


def test_a_frozen_connection_is_closed_within_the_response_timeout_and_its_session_ended(
    database: Database, proxy: TcpProxy
) -> None:
    parts = urlsplit(database.url)
    url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    settings = Settings(
        database_url=url,  # type: ignore[arg-type]
        database={"response_timeout_s": 1, "statement_timeout_ms": 500},  # type: ignore[arg-type]
    )
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
        assert direct.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone() == (0,)
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
