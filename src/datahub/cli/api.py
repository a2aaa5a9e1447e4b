"""`datahub api`: serve the REST API."""

from __future__ import annotations

import argparse

from datahub.api import server
from datahub.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `datahub api`; the settings give the defaults."""
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int, help="worker processes (default: api.workers)")
    parser.set_defaults(run=_api)


def _api(settings: Settings, args: argparse.Namespace) -> int:
    server.serve(
        settings,
        host=args.host or settings.api.host,
        port=args.port or settings.api.port,
        workers=args.workers or settings.api.workers,
        config_file=args.config,
    )
    return 0
