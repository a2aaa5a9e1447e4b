"""`datahub retention run`: delete raw uplinks and readings past their dataset's retention
(run it from a timer, e.g. daily; docs/privacy.md)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from datahub import retention
from datahub.config import Settings
from datahub.storage import db


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the actions of `datahub retention`."""
    sub = parser.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
    q = sub.add_parser("run", help="delete raw data past each dataset's retention; keep rollups")
    q.set_defaults(run=_run)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    with db.connect(settings, autocommit=True) as conn:
        report = retention.run(conn, now=datetime.now(UTC))
    print(json.dumps(report.as_json(), sort_keys=True))
    return 0
