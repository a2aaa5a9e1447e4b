"""How `datahub api` runs: one uvicorn process, or several worker processes on one port.

With `api.workers` > 1, uvicorn's supervisor starts each worker as a new interpreter that
builds the app by name (`worker_app`), from the same config file and environment the
command read, and starts a worker again if one dies. Everything the workers share lives
in the database, so the rate limits, quotas and the ledger hold across them; each has its
own connection pool (`database.pool_size`) and queue.
"""

from __future__ import annotations

import os
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from datahub.api.app import create_app
from datahub.config import Settings, load_settings
from datahub.logs import configure_logging


def serve(
    settings: Settings, *, host: str, port: int, workers: int, config_file: Path | None
) -> None:
    """Serve the API until SIGTERM or SIGINT."""
    options = {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": False,
        "timeout_keep_alive": settings.api.keep_alive_s,
    }
    if workers == 1:
        uvicorn.run(build_app(settings), **options)  # type: ignore[arg-type]
        return
    if config_file is not None:
        os.environ["DATAHUB_CONFIG"] = str(config_file.resolve())
    uvicorn.run(f"{__name__}:worker_app", factory=True, workers=workers, **options)  # type: ignore[arg-type]


def build_app(settings: Settings) -> FastAPI:
    """The app with the device catalog of the settings; it follows the codec directory while
    it runs."""
    return create_app(settings)


def worker_app() -> FastAPI:
    """Build the app in a worker process, from the config file and environment."""
    settings = load_settings()
    configure_logging(settings)
    return build_app(settings)
