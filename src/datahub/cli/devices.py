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
from datahub import registry_import as registry
from datahub.catalog import open_catalog
from datahub.cli.arguments import actor_of
from datahub.config import Settings
from datahub.ingest.redecode import Redecoder, Selection
from datahub.storage import db, unplaced


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the actions of `datahub devices`."""
    sub = parser.add_subparsers(dest="devices_command", required=True, metavar="ACTION")
    p = sub.add_parser(
        "import",
        help="add or update devices from a registry CSV; what it leaves out or empty is kept",
    )
    p.add_argument("file", type=Path)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print what the import would change, device by device, and write nothing",
    )
    p.add_argument(
        "--change-suppliers",
        action="store_true",
        help="let supplier_name and supplier_kind change registered suppliers "
        "(every device of theirs shows the change)",
    )
    p.add_argument(
        "--redecode",
        action=argparse.BooleanOptionalAction,
        help="decode the uplinks devices sent before they were registered "
        "(default: ask on a terminal, else print the commands)",
    )
    p.set_defaults(run=_import)


def _import(settings: Settings, args: argparse.Namespace) -> int:
    catalog = open_catalog(settings)
    file = registry.read_registry_csv(args.file, profiles=catalog)
    if args.dry_run:
        with db.connect(settings, autocommit=True) as conn:
            found = registry.plan(conn, file)
        _show(found, change_suppliers=args.change_suppliers)
        print(
            f"{found.added} devices would be added, {found.updated} updated, "
            f"{found.unchanged} unchanged; nothing was written (--dry-run)"
        )
        return 0
    with db.connect(settings) as conn, conn.transaction():
        found = registry.apply(
            conn, file, actor=actor_of(args), change_suppliers=args.change_suppliers
        )
        waiting = unplaced.count_unknown_uplinks(conn, dev_euis=[c.dev_eui for c in file.lines])
    for change in found.suppliers:
        print(registry.describe_supplier(change))
    print(f"{found.added} devices added, {found.updated} updated, {found.unchanged} unchanged")
    if waiting:
        _offer_redecode(settings, catalog, waiting, decode=args.redecode, actor=actor_of(args))
    return 0


def _show(found: registry.ImportPlan, *, change_suppliers: bool) -> None:
    for supplier in found.suppliers:
        refused = supplier.before is not None and not change_suppliers
        print(
            registry.describe_supplier(supplier)
            + (" (needs --change-suppliers)" if refused else "")
        )
    for change in found.devices:
        print(registry.describe_device(change))


def _offer_redecode(
    settings: Settings,
    catalog: Mapping[str, decoders.Profile],
    waiting: Mapping[str, tuple[int, datetime]],
    *,
    decode: bool | None,
    actor: str,
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
        redecoder = Redecoder(conn, catalog=catalog, actor=actor)
        for dev_eui, (_, first) in sorted(waiting.items()):
            report = redecoder.run(Selection(dev_eui=dev_eui, pending=True, since=first))
            print(f"{dev_eui}: {json.dumps(report.as_json(), sort_keys=True)}")
