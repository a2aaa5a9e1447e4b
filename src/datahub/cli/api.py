"""`datahub api`: serve the REST API."""

from __future__ import annotations

import argparse

import uvicorn

import decoders
from datahub.api.app import create_app
from datahub.api.catalog import MetricCatalog
from datahub.catalog import open_catalog
from datahub.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `datahub api`; the settings give the defaults."""
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.set_defaults(run=_api)


def _api(settings: Settings, args: argparse.Namespace) -> int:
    host = args.host or settings.api.host
    port = args.port or settings.api.port
    # The API's metric catalog includes the codec directory as it was at start-up.
    catalog = MetricCatalog.build(decoders.METRICS, open_catalog(settings))
    app = create_app(settings, catalog=catalog)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    return 0
