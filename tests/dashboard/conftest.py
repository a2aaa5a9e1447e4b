"""A running stack for the browser tests: a seeded TimescaleDB, `datahub api` under uvicorn
on a free port, a local tile server, and Debian's Chromium driven by Playwright.

Chromium is installed by `make test` (deploy/provision.sh chromium); only where it is
genuinely absent are these tests skipped. The bundle must be built (`make web`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

import psycopg
import pytest
from dashboard_seed import Seeded, seed, seed_counting
from dashboard_stack import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    Stack,
    Visit,
    free_port,
    plain_png,
)
from playwright.sync_api import Browser, BrowserContext, sync_playwright
from realservices import temporary_database
from waiting import serving, wait_until

from datahub.api.routes.dashboard import STATIC_DIR


@pytest.fixture(scope="session")
def tile_server() -> Iterator[tuple[str, list[str]]]:
    """Serve one plain tile for every /tiles/{z}/{x}/{y}.png, as a tile provider would."""
    tile = plain_png(256, 256, (236, 232, 222))
    hits: list[str] = []

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            if not self.path.startswith("/tiles/") or not self.path.endswith(".png"):
                self.send_error(404)
                return
            try:
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(tile)))
                self.end_headers()
                self.wfile.write(tile)
            except (BrokenPipeError, ConnectionResetError):
                pass  # Leaflet cancels the tiles of a view it has left.

        def log_message(self, format: str, *args: object) -> None:
            """Keep the test output free of one line per tile."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tiles/{{z}}/{{x}}/{{y}}.png", hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def stack(tile_server: tuple[str, list[str]]) -> Iterator[Stack]:
    """Seed a fresh database and serve it with `datahub api` on a free port."""
    with _serve(seed, "datahub_test_dashboard", tile_server) as served:
        yield served


@pytest.fixture(scope="session")
def counting_stack(tile_server: tuple[str, list[str]]) -> Iterator[Stack]:
    """A stack of people counters only, some of them personal (dashboard_seed.py)."""
    with _serve(seed_counting, "datahub_test_dashboard_counts", tile_server) as served:
        yield served


@contextmanager
def _serve(
    seeder: Callable[[psycopg.Connection], Seeded],
    database_name: str,
    tile_server: tuple[str, list[str]],
) -> Iterator[Stack]:
    """Seed a fresh database with `seeder` and serve it with `datahub api` on a free port."""
    if not (STATIC_DIR / "index.html").is_file():
        pytest.fail(f"the dashboard is not built in {STATIC_DIR}: run `make web`")
    tile_url, tile_hits = tile_server
    with temporary_database("timescaledb", database_name) as database:
        with psycopg.connect(database.url) as conn:
            seeded = seeder(conn)
        port = free_port()
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("DATAHUB_") or key.startswith("DATAHUB_TEST_")
        }
        env |= {
            "DATAHUB_DATABASE_URL": database.url,
            "DATAHUB_DASHBOARD__TILE_URL": tile_url,
            "DATAHUB_DASHBOARD__TILE_ATTRIBUTION": "test tiles",
            "DATAHUB_LOG_LEVEL": "WARNING",
        }
        command = [sys.executable, "-m", "datahub.cli", "api", "--host", "127.0.0.1"]
        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(
                [*command, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
            )
            url = f"http://127.0.0.1:{port}"
            try:
                _wait_ready(url, process, log)
                yield Stack(url=url, database=database, seeded=seeded, tile_hits=tile_hits)
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    try:
        wait_until(f"datahub api at {url}", lambda: serving(url, process), timeout=30)
    except AssertionError as exc:
        log.seek(0)
        output = log.read().decode(errors="replace")
        pytest.fail(f"{exc}:\n{output[-3000:]}")


# Module scope, not session: Playwright's sync API runs an asyncio loop in the main thread
# while it is open, and code that refuses to block inside a running loop (the JavaScript
# sandbox's time limit) would fail in every test that comes after.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium under Playwright; each context gets a fresh profile."""
    if not CHROMIUM.is_file():
        pytest.skip(
            f"no Chromium at {CHROMIUM}; `make test` installs it (apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def visit(stack: Stack, browser: Browser) -> Iterator[Callable[..., Visit]]:
    """Open pages in fresh contexts; the test fails on any console error they report.

    `allow` exempts console errors that a test provokes on purpose (by a substring).
    """
    yield from _visits(stack, browser)


@pytest.fixture
def counting_visit(counting_stack: Stack, browser: Browser) -> Iterator[Callable[..., Visit]]:
    """Open pages of the counters' stack, as `visit` does."""
    yield from _visits(counting_stack, browser)


def _visits(stack: Stack, browser: Browser) -> Iterator[Callable[..., Visit]]:
    visits: list[tuple[Visit, BrowserContext, tuple[str, ...]]] = []

    def open_context(
        *, locale: str = "en-GB", phone: bool = False, allow: tuple[str, ...] = ()
    ) -> Visit:
        if phone:
            context = browser.new_context(
                locale=locale, viewport=PHONE, is_mobile=True, has_touch=True
            )
        else:
            context = browser.new_context(locale=locale, viewport=DESKTOP)
        page = context.new_page()
        visit = Visit(page=page, base_url=stack.url)
        page.on(
            "console",
            lambda m: (
                visit.console_errors.append(f"{m.text} ({m.location.get('url')})")
                if m.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda e: visit.console_errors.append(f"uncaught: {e}"))
        visits.append((visit, context, allow))
        return visit

    yield open_context
    unexpected = []
    for visit, context, allow in visits:
        context.close()
        unexpected += [e for e in visit.console_errors if not any(a in e for a in allow)]
    assert not unexpected, "console errors:\n" + "\n".join(unexpected)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where the screenshots go; kept after the run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
