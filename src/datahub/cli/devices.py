"""`datahub devices import`: add or update devices from a registry CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datahub.catalog import open_catalog
from datahub.config import Settings
from datahub.registry import read_registry_csv
from datahub.storage import db, devices, suppliers


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the actions of `datahub devices`."""
    sub = parser.add_subparsers(dest="devices_command", required=True, metavar="ACTION")
    p = sub.add_parser("import", help="add or update devices from a registry CSV")
    p.add_argument("file", type=Path)
    p.set_defaults(run=_import)


def _import(settings: Settings, args: argparse.Namespace) -> int:
    registry = read_registry_csv(args.file, profiles=open_catalog(settings))
    with db.connect(settings) as conn, conn.transaction():
        ids = suppliers.upsert_suppliers(conn, suppliers=registry.suppliers)
        try:
            inserted, updated = devices.upsert_devices(
                conn, devices=registry.devices, supplier_ids=ids
            )
        except ValueError as exc:
            print(f"datahub devices import: {args.file}: {exc}", file=sys.stderr)
            return 2
    print(f"{inserted} devices added, {updated} updated, {len(ids)} suppliers")
    return 0
