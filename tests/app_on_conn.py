"""The API on one test connection: what every request reads and writes rolls back with the
test."""

from __future__ import annotations

from contextlib import nullcontext

import psycopg
from fastapi import FastAPI

from datahub.api.app import create_app
from datahub.api.auth import Callers
from datahub.api.deps import (
    Writers,
    get_lender,
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
    app.dependency_overrides[get_writers] = lambda: Writers(rates=on_conn, ledger=on_conn)
    app.state.callers = Callers(0)
    return app
