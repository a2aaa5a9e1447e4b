"""What the benchmarks run on: scratch databases, and the datahub processes under test
(ingest workers, the API), each started as `python -m datahub.cli` with a config file."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import yaml
from pydantic import SecretStr

from datahub.config import Settings
from datahub.errors import DatahubError
from datahub.storage import bench, migrate


class BenchError(DatahubError):
    """A benchmark could not run: a process did not start, a broker lost messages, ..."""


def database_settings(settings: Settings, dbname: str) -> Settings:
    """The settings with the database URL pointing at `dbname` on the same server."""
    parts = urlsplit(settings.conninfo)
    url = urlunsplit(parts._replace(path=f"/{dbname}"))
    return settings.model_copy(update={"database_url": SecretStr(url)})


def fresh_database(settings: Settings, dbname: str) -> Settings:
    """Drop and create `dbname`, migrate it; return settings pointing at it."""
    with psycopg.connect(settings.conninfo, autocommit=True) as admin:
        bench.recreate_database(admin, dbname=dbname)
    target = database_settings(settings, dbname)
    migrate.upgrade(target)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


class Service:
    """A `datahub` subcommand running as a child process with a config file of its own."""

    def __init__(
        self, name: str, config: dict[str, Any], args: Sequence[str], workdir: Path
    ) -> None:
        self.name = name
        config_file = workdir / f"{name}.yaml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        # Only the config file speaks: DATAHUB_* variables of the caller would override it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATAHUB_")}
        self.log_file = workdir / f"{name}.log"
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "datahub.cli", "--config", str(config_file), *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_http(self, url: str, *, timeout: float = 60.0) -> None:
        """Wait until `url` answers 200; raise BenchError if the process dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited; see {self.log_file}")
            with contextlib.suppress(httpx.HTTPError):  # not listening yet
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            time.sleep(0.2)
        raise BenchError(f"{self.name} not ready at {url} within {timeout:.0f} s")

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def database_config(settings: Settings) -> dict[str, Any]:
    """The parts of a child's config that every benchmark process shares."""
    return {
        "database_url": settings.conninfo,
        "broker_url": settings.broker_url,
        "log_level": "WARNING",
        "database": {"pool_size": settings.database.pool_size},
    }
