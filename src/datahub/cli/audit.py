"""`datahub audit`: list and show the audit log's entries, and verify its hash chain."""

from __future__ import annotations

import argparse
import json

import psycopg

from datahub import audit
from datahub.api.admin_schemas import entry_out
from datahub.cli.arguments import count
from datahub.cli.console import print_json, print_table, transaction
from datahub.config import Settings
from datahub.errors import NotFound
from datahub.storage import audit as log
from datahub.storage import db


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the actions of `datahub audit`."""
    sub = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    q = sub.add_parser("list", help="list entries in chain order (the last 50 unless --after)")
    q.add_argument("--after", type=count, help="entries after this seq, oldest first")
    q.add_argument("--limit", type=count, default=50)
    q.add_argument("--action", help="an action (dataset.update) or all of a kind (dataset.)")
    q.add_argument("--target", help="e.g. supplier:edg")
    q.add_argument("--actor", help="e.g. cli:alice or key:<prefix>")
    q.add_argument("--json", action="store_true", help="the entries as the API renders them")
    q.set_defaults(run=_list)
    q = sub.add_parser("show", help="one entry with its record before and after")
    q.add_argument("seq", type=count)
    q.set_defaults(run=_show)
    q = sub.add_parser(
        "verify", help="walk the hash chain; exit 1 and name the first broken link if any"
    )
    q.set_defaults(run=_verify)


def _list(settings: Settings, args: argparse.Namespace) -> int:
    filters = {"action": args.action, "target": args.target, "actor": args.actor}
    with transaction(settings) as conn:
        if args.after is None:
            found = log.list_entries(conn, limit=args.limit, newest_first=True, **filters)
            found.reverse()
        else:
            found = log.list_entries(conn, after=args.after, limit=args.limit, **filters)
    if args.json:
        print_json([entry_out(e) for e in found])
        return 0
    print_table(
        [(e.seq, audit.timestamp(e.at), e.actor, e.action, e.target) for e in found],
        ("SEQ", "AT", "ACTOR", "ACTION", "TARGET"),
    )
    return 0


def _show(settings: Settings, args: argparse.Namespace) -> int:
    with transaction(settings) as conn:
        entry = log.get_entry(conn, seq=args.seq)
    if entry is None:
        raise NotFound(f"no audit entry {args.seq}")
    print_json(entry_out(entry))
    return 0


def _verify(settings: Settings, args: argparse.Namespace) -> int:
    # One snapshot of the whole log: REPEATABLE READ, so appends meanwhile are not half seen.
    with db.connect(settings) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            verdict = audit.verify(log.iterate_entries(conn))
    summary = {
        "intact": verdict.intact,
        "entries": verdict.entries,
        "head_seq": verdict.head_seq,
        "head_hash": verdict.head_hash.hex(),
    }
    if verdict.intact:
        print(json.dumps(summary))
        return 0
    print(json.dumps(summary | {"broken_at": verdict.broken_at, "reason": verdict.reason}))
    return 1
