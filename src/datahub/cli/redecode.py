"""`datahub redecode`: decode stored uplinks again and replace their readings."""

from __future__ import annotations

import argparse
import json

from datahub.catalog import open_catalog
from datahub.cli.arguments import actor_of, aware_time
from datahub.config import Settings
from datahub.errors import ConfigError
from datahub.ingest.redecode import Redecoder, Report, Selection
from datahub.progress import Progress
from datahub.storage import db


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `datahub redecode`."""
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--profile", help="the uplinks of every device with this profile")
    what.add_argument("--device", metavar="DEV_EUI", help="the uplinks of one device")
    what.add_argument(
        "--pending",
        action="store_true",
        help="uplinks without readings: unknown device, no decoder or failed decoding",
    )
    parser.add_argument("--since", type=aware_time, help="received at or after (ISO 8601)")
    parser.add_argument("--until", type=aware_time, help="received before (ISO 8601)")
    parser.add_argument("--batch", type=int, default=1000, help="uplinks per transaction")
    parser.set_defaults(run=_redecode)


def _redecode(settings: Settings, args: argparse.Namespace) -> int:
    if args.since is None and not args.pending:
        raise ConfigError("--since is required with --profile and --device")
    catalog = open_catalog(settings)
    if args.profile is not None and args.profile not in catalog:
        raise ConfigError(f"unknown profile {args.profile!r}; known: {', '.join(sorted(catalog))}")
    selection = Selection(
        profile=args.profile,
        dev_eui=args.device.upper() if args.device else None,
        pending=args.pending,
        since=args.since,
        until=args.until,
    )
    progress = Progress("redecode")

    def show(report: Report) -> None:
        note = f"changed {report.changed}, failed {report.failed}"
        progress.update(report.seen, report.selected, note)

    with db.connect(settings, autocommit=True) as conn:
        report = Redecoder(conn, catalog=catalog, batch_size=args.batch, actor=actor_of(args)).run(
            selection, on_batch=show
        )
    progress.finish()
    print(json.dumps(report.as_json(), sort_keys=True))
    return 0
