"""`datahub opendata bulk`: write the open datasets' bulk files that are due (from a timer)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

import decoders
from datahub.api.metric_index import MetricIndex
from datahub.catalog import open_catalog
from datahub.config import Settings
from datahub.errors import ConfigError
from datahub.opendata.bulk import BulkWriter
from datahub.privacy import View
from datahub.storage import db


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the actions of `datahub opendata`."""
    sub = parser.add_subparsers(dest="opendata_command", required=True, metavar="ACTION")
    p = sub.add_parser("bulk", help="write the bulk files that are due (run it from a timer)")
    p.set_defaults(run=_bulk)


def _bulk(settings: Settings, args: argparse.Namespace) -> int:
    directory = settings.opendata.bulk_dir
    if directory is None:
        raise ConfigError("no opendata.bulk_dir: set where the bulk files go")
    metric_index = MetricIndex.build(decoders.METRICS, open_catalog(settings))
    with db.connect(settings, autocommit=True) as conn:
        writer = BulkWriter(
            conn,
            directory=directory,
            metric_index=metric_index,
            delay=timedelta(minutes=settings.opendata.bulk_delay_minutes),
            view=View.of(settings.privacy),
        )
        report = writer.run(now=datetime.now(UTC))
    print(json.dumps(report.as_json(), sort_keys=True))
    return 0
