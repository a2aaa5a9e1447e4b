"""`datahub devices import`: add or update devices from a registry CSV, and decode what the
devices sent before they were registered."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import decoders
from datahub.catalog import open_catalog
from datahub.config import Settings
from datahub.ingest.redecode import Redecoder, Selection
from datahub.registry import read_registry_csv
from datahub.storage import db, devices, suppliers, unplaced


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the actions of `datahub devices`."""
    sub = parser.add_subparsers(dest="devices_command", required=True, metavar="ACTION")
    p = sub.add_parser("import", help="add or update devices from a registry CSV")
    p.add_argument("file", type=Path)
    p.add_argument(
        "--redecode",
        action=argparse.BooleanOptionalAction,
        help="decode the uplinks devices sent before they were registered "
        "(default: ask on a terminal, else print the commands)",
    )
    p.set_defaults(run=_import)


def _import(settings: Settings, args: argparse.Namespace) -> int:
    catalog = open_catalog(settings)
    registry = read_registry_csv(args.file, profiles=catalog)
    with db.connect(settings) as conn, conn.transaction():
        ids = suppliers.upsert_suppliers(conn, suppliers=registry.suppliers)
        try:
            inserted, updated = devices.upsert_devices(
                conn, devices=registry.devices, supplier_ids=ids, keep=registry.keep
            )
        except ValueError as exc:
            print(f"datahub devices import: {args.file}: {exc}", file=sys.stderr)
            return 2
        waiting = unplaced.count_unknown_uplinks(
            conn, dev_euis=[d.dev_eui for d in registry.devices]
        )
    print(f"{inserted} devices added, {updated} updated, {len(ids)} suppliers")
    if waiting:
        _offer_redecode(settings, catalog, waiting, decode=args.redecode)
    return 0


def _offer_redecode(
    settings: Settings,
    catalog: Mapping[str, decoders.Profile],
    waiting: Mapping[str, tuple[int, datetime]],
    *,
    decode: bool | None,
) -> None:
    """Decode the uplinks that came before their devices were registered, if asked to."""
    total = sum(n for n, _ in waiting.values())
    print(f"{len(waiting)} of these devices sent {total} uplinks before they were registered")
    if decode is None and sys.stdin.isatty():
        decode = input("decode them now? [y/N] ").strip().lower() in ("y", "yes")
    if not decode:
        for dev_eui, (_, first) in sorted(waiting.items()):
            print(f"  datahub redecode --device {dev_eui} --since {first.isoformat()}")
        return
    with db.connect(settings, autocommit=True) as conn:
        redecoder = Redecoder(conn, catalog=catalog)
        for dev_eui, (_, first) in sorted(waiting.items()):
            report = redecoder.run(Selection(dev_eui=dev_eui, pending=True, since=first))
            print(f"{dev_eui}: {json.dumps(report.as_json(), sort_keys=True)}")
