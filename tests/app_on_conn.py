"""The API on one test connection: what every request reads and writes rolls back with the
test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from typing import Any, cast

import psycopg
from fastapi import FastAPI

from datahub.api.app import create_app
from datahub.api.auth import Callers
from datahub.api.deps import (
    Writers,
    get_lender,
    get_loop_lender,
    get_primary_lender,
    get_read_lender,
    get_writers,
)
from datahub.api.metric_index import MetricIndex
from datahub.api.writer import Inline
from datahub.config import Settings


def app_on_conn(settings: Settings, conn: psycopg.Connection, catalog: MetricIndex) -> FastAPI:
    """Build the app on `catalog`, on `conn` instead of pooled connections and the process's
    writers.

    The app remembers no caller (fairshare.key_cache_s 0), so that a change a test makes
    to keys or grants shows at once; tests/api/test_api_callers.py tests the memory.
    """
    app = create_app(settings, catalog=catalog)
    on_conn = Inline(conn)
    app.dependency_overrides[get_read_lender] = lambda: lambda: nullcontext(conn)
    app.dependency_overrides[get_primary_lender] = lambda: lambda: nullcontext(conn)
    app.dependency_overrides[get_lender] = lambda: lambda: nullcontext(conn)
    app.dependency_overrides[get_loop_lender] = lambda: lambda: _on_loop(conn)
    app.dependency_overrides[get_writers] = lambda: Writers(rates=on_conn, ledger=on_conn)
    app.state.callers = Callers(0)
    return app


class _LoopOnConn:
    """The test's connection where a route reads on the event loop: the same statements,
    made at once (blocking the loop: tests only), in the test's transaction."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    async def execute(self, query: Any, params: Any = None) -> _Rows:
        return _Rows(self._conn.execute(query, params))


class _Rows:
    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


@asynccontextmanager
async def _on_loop(conn: psycopg.Connection) -> AsyncIterator[psycopg.AsyncConnection]:
    yield cast(psycopg.AsyncConnection, _LoopOnConn(conn))
