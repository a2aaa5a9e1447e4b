"""The `datahub` command: builds the settings once and passes them to each subcommand."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import decoders
from datahub.bench import cli as bench_cli
from datahub.catalog import list_profiles, open_catalog, replay_examples
from datahub.config import Settings, load_settings
from datahub.errors import ConfigError, DatahubError
from datahub.fairshare import admin_cli as fairshare_admin
from datahub.fairshare.admin_cli import aware_time
from datahub.logs import configure_logging

log = logging.getLogger("datahub")


def _cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from datahub.storage import migrate

    if args.to and args.to != "head" and args.downgrade:
        migrate.downgrade(settings, args.to)
    else:
        migrate.upgrade(settings, args.to or "head")
    print(f"database migrated to {args.to or 'head'}")
    return 0


def _cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from datahub.ingest.pipeline import Ingest, tuned_collector

    if not settings.sources:
        raise ConfigError("no sources configured: list them under `sources:` in the config file")
    ingest = Ingest(settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: finishing the batch in flight, then stopping", signum)
        ingest.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with tuned_collector():  # once start-up has built what lives as long as the process
        ingest.run()
    log.info("ingest stopped: %s", json.dumps(ingest.pipeline.stats.snapshot(), sort_keys=True))
    return 0


def _cmd_backfill(settings: Settings, args: argparse.Namespace) -> int:
    from datahub.ingest.backfill import backfill

    report = backfill(settings, args.source, since=args.since, until=args.until)
    print(json.dumps(report.as_json(), sort_keys=True))
    return 0


def _cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from datahub.api.app import create_app

    host = args.host or settings.api.host
    port = args.port or settings.api.port
    from datahub.api.catalog import MetricCatalog

    # The API's metric catalog includes the codec directory as it was at start-up.
    catalog = MetricCatalog.build(decoders.METRICS, open_catalog(settings))
    app = create_app(settings, catalog=catalog)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    return 0


def _cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    import simulators

    scenario = simulators.load_scenario(args.scenario or simulators.DEFAULT_SCENARIO)
    if args.registry:
        written = simulators.write_registry_csv(scenario, args.registry)
        print(f"registry of {written} devices written to {args.registry}")
        return 0
    report = simulators.simulate(
        scenario,
        settings,
        count=args.count,
        rate=args.rate,
        duration=args.duration,
        seed=args.seed,
        qos=args.qos,
        history=timedelta(hours=args.history) if args.history else None,
        speed=args.speed,
    )
    print(json.dumps(report.as_json(), sort_keys=True))
    return 0


def _cmd_devices_import(settings: Settings, args: argparse.Namespace) -> int:
    from datahub.registry import read_registry_csv
    from datahub.storage import db, devices, suppliers

    registry = read_registry_csv(args.file, profiles=open_catalog(settings))
    with db.connect(settings) as conn, conn.transaction():
        ids = suppliers.upsert_suppliers(conn, suppliers=registry.suppliers)
        try:
            inserted, updated = devices.upsert_devices(
                conn, devices=registry.devices, supplier_ids=ids, keep=registry.keep
            )
        except ValueError as exc:
            print(f"datahub devices import: {args.file}: {exc}", file=sys.stderr)
            return 2
    print(f"{inserted} devices added, {updated} updated, {len(ids)} suppliers")
    return 0


def _cmd_decode(settings: Settings, args: argparse.Namespace) -> int:
    try:
        payload = bytes.fromhex(args.payload_hex)
    except ValueError:
        raise ConfigError(f"--payload-hex {args.payload_hex!r} is not hex") from None
    if args.codec is not None:
        return _decode_with_codec(settings, args.codec, args.f_port, payload)
    catalog = open_catalog(settings)
    try:
        profile = catalog[args.profile]
    except KeyError:
        raise ConfigError(
            f"unknown profile {args.profile!r}; known: {', '.join(sorted(catalog))}"
        ) from None
    try:
        data = profile.decode(args.f_port, payload)
    except decoders.DecodeError as exc:
        print(json.dumps({"data": None, "warnings": [], "errors": [str(exc)]}, ensure_ascii=False))
        return 1
    print(json.dumps({"data": data, "warnings": [], "errors": []}, ensure_ascii=False))
    return 0


def _decode_with_codec(settings: Settings, codec_file: Path, f_port: int, payload: bytes) -> int:
    """Print the codec's `{data, warnings, errors}` as it returned them; 1 on errors."""
    from decoders.javascript import CodecError, JsCodec

    try:
        codec = JsCodec(
            codec_file.read_text(encoding="utf-8"),
            name=str(codec_file),
            timeout_ms=settings.catalog.codec_timeout_ms,
            max_memory_bytes=settings.catalog.codec_max_memory_mb * 1024 * 1024,
        )
    except (OSError, UnicodeDecodeError, CodecError) as exc:
        raise ConfigError(f"--codec {codec_file}: {exc}") from exc
    try:
        result = codec.run(f_port, payload)
    except decoders.DecodeError as exc:
        result = {"data": None, "errors": [str(exc)]}
    finally:
        codec.close()
    result = {"data": None, "warnings": [], "errors": [], **result}
    print(json.dumps(result, ensure_ascii=False))
    return 1 if result["errors"] else 0


def _cmd_decoders_list(settings: Settings, args: argparse.Namespace) -> int:
    profiles = list_profiles(open_catalog(settings))
    if args.json:
        print(json.dumps([dataclasses.asdict(p) for p in profiles], indent=2))
        return 0
    for p in profiles:
        print(f"{p.id:32} {p.kind:10} {p.version:12}  {', '.join(p.metrics)}")
    return 0


def _cmd_decoders_test(settings: Settings, args: argparse.Namespace) -> int:
    catalog = open_catalog(settings)
    if args.profile and args.profile not in catalog:
        raise ConfigError(f"unknown profile {args.profile!r}")
    outcomes = replay_examples(catalog, [args.profile] if args.profile else None)
    for o in outcomes:
        verdict = "pass" if o.failure is None else f"FAIL  {o.failure}"
        print(f"{o.profile}#{o.index} {o.description}: {verdict}")
    failed = sum(o.failure is not None for o in outcomes)
    for path, problem in catalog.problems.items():
        print(f"{path}: FAIL  {problem}")
    print(f"{len(outcomes) - failed} passed, {failed} failed, {len(catalog.problems)} bad files")
    return 1 if failed or catalog.problems else 0


def _cmd_redecode(settings: Settings, args: argparse.Namespace) -> int:
    from datahub.ingest.redecode import Redecoder, Report, Selection
    from datahub.progress import Progress
    from datahub.storage import db

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
        report = Redecoder(conn, catalog=catalog, batch_size=args.batch).run(
            selection, on_batch=show
        )
    progress.finish()
    print(json.dumps(report.as_json(), sort_keys=True))
    return 0


def _cmd_fairshare_close(settings: Settings, args: argparse.Namespace) -> int:
    from datahub.fairshare import close
    from datahub.fairshare.money import format_cents
    from datahub.storage import db

    with db.connect(settings) as conn, conn.transaction():
        result = close.close_period(
            conn,
            period=args.period,
            now=datetime.now(UTC),
            currency=settings.fairshare.currency,
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


def _cmd_fairshare_view(settings: Settings, args: argparse.Namespace) -> int:
    """Print a closed period's statement, invoice or report, as JSON or CSV."""
    from datahub.errors import NotFound
    from datahub.fairshare import close, statements
    from datahub.storage import db, periods

    with db.connect(settings) as conn, conn.transaction():
        result = close.get_closed(conn, period=args.period)
        if args.fairshare_command == "statement":
            if not periods.supplier_exists(conn, slug=args.supplier):
                raise NotFound(f"no supplier has the slug {args.supplier!r}")
            view = statements.supplier_statement(result, args.supplier)
            header, rows = statements.STATEMENT_HEADER, statements.statement_rows(view)
        elif args.fairshare_command == "invoice":
            if not periods.consumer_exists(conn, slug=args.consumer):
                raise NotFound(f"no consumer has the slug {args.consumer!r}")
            view = statements.consumer_invoice(result, args.consumer)
            header, rows = statements.INVOICE_HEADER, statements.invoice_rows(view)
        else:
            view = statements.transparency_report(result)
            header, rows = statements.REPORT_HEADER, statements.report_rows(view)
    if args.csv:
        sys.stdout.write(statements.to_csv(header, rows))
    else:
        print(json.dumps(view, indent=2, sort_keys=True, ensure_ascii=False))
    return 0


def _cmd_opendata_bulk(settings: Settings, args: argparse.Namespace) -> int:
    from datahub.api.catalog import MetricCatalog
    from datahub.opendata.bulk import BulkWriter
    from datahub.storage import db

    directory = settings.opendata.bulk_dir
    if directory is None:
        raise ConfigError("no opendata.bulk_dir: set where the bulk files go")
    catalog = MetricCatalog.build(decoders.METRICS, open_catalog(settings))
    with db.connect(settings, autocommit=True) as conn:
        writer = BulkWriter(
            conn,
            directory=directory,
            catalog=catalog,
            delay=timedelta(minutes=settings.opendata.bulk_delay_minutes),
        )
        report = writer.run(now=datetime.now(UTC))
    print(json.dumps(report.as_json(), sort_keys=True))
    return 0


def _period(text: str) -> str:
    from datahub.errors import BadRequest
    from datahub.fairshare.close import period_bounds

    try:
        period_bounds(text)
    except BadRequest as exc:
        raise argparse.ArgumentTypeError(exc.detail) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datahub", description=__doc__)
    parser.add_argument("--config", type=Path, help="YAML config file (default: $DATAHUB_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("migrate", help="create or upgrade the database schema")
    p.add_argument("--to", help="target revision (default: head)")
    p.add_argument("--downgrade", action="store_true", help="allow going down to --to")
    p.set_defaults(run=_cmd_migrate)

    p = commands.add_parser("ingest", help="subscribe to every source and store uplinks")
    p.set_defaults(run=_cmd_ingest)

    p = commands.add_parser(
        "backfill", help="store a TTN source's uplinks from its Storage Integration"
    )
    p.add_argument("--source", required=True, help="a ttn-v3 source with storage_api")
    p.add_argument("--since", type=aware_time, required=True, help="received after (ISO 8601)")
    p.add_argument("--until", type=aware_time, help="received before (ISO 8601)")
    p.set_defaults(run=_cmd_backfill)

    p = commands.add_parser("api", help="serve the REST API")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(run=_cmd_api)

    p = commands.add_parser("simulate", help="publish simulated uplinks of both cities")
    p.add_argument("--scenario", type=Path, help="scenario file (default: the demo scenario)")
    p.add_argument("--count", type=int, help="stop after this many uplinks")
    p.add_argument("--rate", type=float, help="uplinks per second (default: as fast as possible)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--speed", type=float, help="report at the devices' intervals, sped up")
    p.add_argument("--history", type=float, help="first send this many hours of past uplinks")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--qos", type=int, choices=(0, 1), default=1)
    p.add_argument(
        "--registry", type=Path, help="write the scenario's device registry CSV and exit"
    )
    p.set_defaults(run=_cmd_simulate)

    p = commands.add_parser("devices", help="manage the device registry")
    sub = p.add_subparsers(dest="devices_command", required=True, metavar="ACTION")
    q = sub.add_parser("import", help="add or update devices from a registry CSV")
    q.add_argument("file", type=Path)
    q.set_defaults(run=_cmd_devices_import)

    p = commands.add_parser("decode", help="decode one payload with a profile or a JS codec")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--profile", help="vendor/model, e.g. dragino/lht65")
    which.add_argument("--codec", type=Path, help="a vendor JavaScript codec file")
    p.add_argument("--f-port", type=int, required=True)
    p.add_argument("--payload-hex", required=True)
    p.set_defaults(run=_cmd_decode)

    p = commands.add_parser("decoders", help="the device catalog: built-in and JS codecs")
    sub = p.add_subparsers(dest="decoders_command", required=True, metavar="ACTION")
    q = sub.add_parser("list", help="list every profile with its kind, version and metrics")
    q.add_argument("--json", action="store_true")
    q.set_defaults(run=_cmd_decoders_list)
    q = sub.add_parser("test", help="replay every profile's examples; non-zero on a failure")
    q.add_argument("--profile", help="only this vendor/model")
    q.set_defaults(run=_cmd_decoders_test)

    p = commands.add_parser(
        "redecode", help="decode stored uplinks again and replace their readings"
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--profile", help="the uplinks of every device with this profile")
    what.add_argument("--device", metavar="DEV_EUI", help="the uplinks of one device")
    what.add_argument(
        "--pending",
        action="store_true",
        help="uplinks without readings: unknown device, no decoder or failed decoding",
    )
    p.add_argument("--since", type=aware_time, help="received at or after (ISO 8601)")
    p.add_argument("--until", type=aware_time, help="received before (ISO 8601)")
    p.add_argument("--batch", type=int, default=1000, help="uplinks per transaction")
    p.set_defaults(run=_cmd_redecode)

    p = commands.add_parser("opendata", help="open data: the bulk files")
    sub = p.add_subparsers(dest="opendata_command", required=True, metavar="ACTION")
    q = sub.add_parser("bulk", help="write the bulk files that are due (run it from a timer)")
    q.set_defaults(run=_cmd_opendata_bulk)

    p = commands.add_parser(
        "fairshare", help="fair share: suppliers, datasets, consumers, keys, tariffs, periods"
    )
    fairshare = p.add_subparsers(dest="fairshare_command", required=True, metavar="ACTION")
    fairshare_admin.add_commands(fairshare)  # supplier … tariff, seed
    bench_cli.add_commands(commands)  # bench ingest, query, plot
    q = fairshare.add_parser(
        "close", help="close a month: rate its usage, invoice consumers, pay suppliers"
    )
    q.add_argument("--period", type=_period, required=True, metavar="YYYY-MM")
    q.add_argument("--json", action="store_true", help="print the whole result as JSON")
    q.set_defaults(run=_cmd_fairshare_close)
    q = fairshare.add_parser("statement", help="a supplier's statement of a closed period")
    q.add_argument("--supplier", required=True, help="supplier slug")
    q.add_argument("--period", type=_period, required=True, metavar="YYYY-MM")
    q.add_argument("--csv", action="store_true", help="CSV instead of JSON")
    q.set_defaults(run=_cmd_fairshare_view)
    q = fairshare.add_parser("invoice", help="a consumer's invoice of a closed period")
    q.add_argument("--consumer", required=True, help="consumer slug")
    q.add_argument("--period", type=_period, required=True, metavar="YYYY-MM")
    q.add_argument("--csv", action="store_true", help="CSV instead of JSON")
    q.set_defaults(run=_cmd_fairshare_view)
    q = fairshare.add_parser("report", help="the public transparency report of a closed period")
    q.add_argument("--period", type=_period, required=True, metavar="YYYY-MM")
    q.add_argument("--csv", action="store_true", help="CSV instead of JSON")
    q.set_defaults(run=_cmd_fairshare_view)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        configure_logging(settings)
        return int(args.run(settings, args))
    except DatahubError as exc:
        print(f"datahub: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
