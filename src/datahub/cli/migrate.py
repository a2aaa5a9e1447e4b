"""`datahub migrate`: create or upgrade the database schema."""

from __future__ import annotations

import argparse

from datahub.config import Settings
from datahub.storage import migrate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `datahub migrate`."""
    parser.add_argument("--to", help="target revision (default: head)")
    parser.add_argument("--downgrade", action="store_true", help="allow going down to --to")
    parser.set_defaults(run=_migrate)


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    if args.to and args.to != "head" and args.downgrade:
        migrate.downgrade(settings, args.to)
    else:
        migrate.upgrade(settings, args.to or "head")
    print(f"database migrated to {args.to or 'head'}")
    return 0
