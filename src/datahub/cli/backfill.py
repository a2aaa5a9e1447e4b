"""`datahub backfill`: store a TTN source's uplinks from its Storage Integration."""

from __future__ import annotations

import argparse
import json

from datahub.cli.arguments import aware_time
from datahub.config import Settings
from datahub.ingest.backfill import backfill


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `datahub backfill`."""
    parser.add_argument("--source", required=True, help="a ttn-v3 source with storage_api")
    parser.add_argument("--since", type=aware_time, required=True, help="received after (ISO 8601)")
    parser.add_argument("--until", type=aware_time, help="received before (ISO 8601)")
    parser.set_defaults(run=_backfill)


def _backfill(settings: Settings, args: argparse.Namespace) -> int:
    report = backfill(settings, args.source, since=args.since, until=args.until)
    print(json.dumps(report.as_json(), sort_keys=True))
    return 0
