"""`datahub fairshare`: the administration (fairshare_admin.py) and the closed periods:
close a month, and print its statements, invoices and transparency report."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from datahub.cli import fairshare_admin
from datahub.cli.arguments import actor_of, period
from datahub.config import Settings
from datahub.errors import NotFound
from datahub.fairshare import close, statements
from datahub.fairshare.money import format_cents
from datahub.storage import db, periods


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the actions of `datahub fairshare`."""
    fairshare = parser.add_subparsers(dest="fairshare_command", required=True, metavar="ACTION")
    fairshare_admin.add_commands(fairshare)  # supplier … tariff, seed
    q = fairshare.add_parser(
        "close", help="close a month: rate its usage, invoice consumers, pay suppliers"
    )
    q.add_argument("--period", type=period, required=True, metavar="YYYY-MM")
    q.add_argument("--json", action="store_true", help="print the whole result as JSON")
    q.set_defaults(run=_close)
    q = fairshare.add_parser("statement", help="a supplier's statement of a closed period")
    q.add_argument("--supplier", required=True, help="supplier slug")
    q.add_argument("--period", type=period, required=True, metavar="YYYY-MM")
    q.add_argument("--csv", action="store_true", help="CSV instead of JSON")
    q.set_defaults(run=_statement)
    q = fairshare.add_parser("invoice", help="a consumer's invoice of a closed period")
    q.add_argument("--consumer", required=True, help="consumer slug")
    q.add_argument("--period", type=period, required=True, metavar="YYYY-MM")
    q.add_argument("--csv", action="store_true", help="CSV instead of JSON")
    q.set_defaults(run=_invoice)
    q = fairshare.add_parser("report", help="the public transparency report of a closed period")
    q.add_argument("--period", type=period, required=True, metavar="YYYY-MM")
    q.add_argument("--csv", action="store_true", help="CSV instead of JSON")
    q.set_defaults(run=_report)


def _close(settings: Settings, args: argparse.Namespace) -> int:
    with db.connect(settings) as conn, conn.transaction():
        result = close.close_period(
            conn,
            period=args.period,
            now=datetime.now(UTC),
            currency=settings.fairshare.currency,
            actor=actor_of(args),
        )
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False))
        return 0
    currency = result["currency"]
    payouts = result["supplier_payouts_cents"]
    print(f"period {result['period']} closed at {result['closed_at']}, hash {result['hash']}")
    print(
        f"revenue {format_cents(result['revenue_cents'])} {currency} = platform fee "
        f"{format_cents(result['platform_fee_cents'])} + supplier payouts "
        f"{format_cents(sum(payouts.values()))}"
    )
    for slug, supplier in result["suppliers"].items():
        purposes = ", ".join(f"{p} {n}" for p, n in supplier["observations_by_purpose"].items())
        print(
            f"  {slug:24} payout {format_cents(supplier['payout_cents']):>12} {currency}  "
            f"shadow value {format_cents(supplier['shadow_value_cents']):>10}  ({purposes})"
        )
    print(
        f"{len(result['invoices'])} invoices, {result['observations']} observations, "
        f"{result['unpriced_observations']} without a tariff"
    )
    ok = all(result["conservation"].values())
    print("conservation: " + ("every split sums to its whole" if ok else "BROKEN"))
    return 0 if ok else 1


def _statement(settings: Settings, args: argparse.Namespace) -> int:
    with db.connect(settings) as conn, conn.transaction():
        result = close.get_closed(conn, period=args.period)
        if not periods.supplier_exists(conn, slug=args.supplier):
            raise NotFound(f"no supplier has the slug {args.supplier!r}")
    view = statements.supplier_statement(result, args.supplier)
    return _print(view, args.csv, statements.STATEMENT_HEADER, statements.statement_rows(view))


def _invoice(settings: Settings, args: argparse.Namespace) -> int:
    with db.connect(settings) as conn, conn.transaction():
        result = close.get_closed(conn, period=args.period)
        if not periods.consumer_exists(conn, slug=args.consumer):
            raise NotFound(f"no consumer has the slug {args.consumer!r}")
    view = statements.consumer_invoice(result, args.consumer)
    return _print(view, args.csv, statements.INVOICE_HEADER, statements.invoice_rows(view))


def _report(settings: Settings, args: argparse.Namespace) -> int:
    with db.connect(settings) as conn, conn.transaction():
        result = close.get_closed(conn, period=args.period)
    view = statements.transparency_report(result, ombudsman=settings.fairshare.ombudsman)
    return _print(view, args.csv, statements.REPORT_HEADER, statements.report_rows(view))


def _print(
    view: Mapping[str, object], csv: bool, header: Sequence[str], rows: Iterable[statements.Row]
) -> int:
    """Print a closed period's statement, invoice or report, as JSON or CSV."""
    if csv:
        sys.stdout.write(statements.to_csv(header, rows))
    else:
        print(json.dumps(view, indent=2, sort_keys=True, ensure_ascii=False))
    return 0
