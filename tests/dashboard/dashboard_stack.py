"""The browser tests' stack: where Chromium is, how it starts, and the helpers around it."""

from __future__ import annotations

import os
import socket
import struct
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
from dashboard_seed import Seeded
from playwright.sync_api import Page
from realservices import Database

CHROMIUM = Path(os.environ.get("DATAHUB_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "dashboard"
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass
class Stack:
    """The API serving the dashboard, and what it serves."""

    url: str
    database: Database
    seeded: Seeded
    tile_hits: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plain_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain PNG of one colour with a darker one-pixel border (a tile grid)."""
    border = tuple(max(0, c - 18) for c in rgb)
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter type: none
        for x in range(width):
            edge = x == 0 or y == 0
            row.extend(border if edge else rgb)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


@dataclass
class Visit:
    """One page of its own browser context, and what its console reported."""

    page: Page
    base_url: str
    console_errors: list[str] = field(default_factory=list)

    def open(self, fragment: str = "") -> Page:
        """Load the dashboard (with `#fragment` state) and wait until its data is shown."""
        self.page.goto(f"{self.base_url}/{fragment}")
        self.page.wait_for_selector("body[data-state=ready]", timeout=15_000)
        return self.page


def database_increase(stack: Stack, *, dev_eui: str, metric: str, start: str, end: str) -> float:
    """What a counter counted in [start, end): its last value in it less the last before."""
    with psycopg.connect(stack.database.url) as conn:
        row = conn.execute(
            """
            SELECT (SELECT r.value FROM reading r WHERE r.device_id = d.id AND r.metric = %(m)s
                      AND r.time < %(end)s ORDER BY r.time DESC LIMIT 1)
                 - (SELECT r.value FROM reading r WHERE r.device_id = d.id AND r.metric = %(m)s
                      AND r.time < %(start)s ORDER BY r.time DESC LIMIT 1)
            FROM device d WHERE d.dev_eui = %(eui)s
            """,
            {
                "m": metric,
                "eui": dev_eui,
                "start": datetime.fromisoformat(start),
                "end": datetime.fromisoformat(end),
            },
        ).fetchone()
    assert row is not None
    return float(row[0])
