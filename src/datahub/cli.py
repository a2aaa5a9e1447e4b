"""The `datahub` command: builds the settings once and passes them to each subcommand."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from types import FrameType

import decoders
from datahub.config import Settings, load_settings
from datahub.errors import ConfigError, DatahubError
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
    from datahub.ingest.pipeline import Ingest

    if not settings.sources:
        raise ConfigError("no sources configured: list them under `sources:` in the config file")
    ingest = Ingest(settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: finishing the batch in flight, then stopping", signum)
        ingest.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ingest.run()
    log.info("ingest stopped: %s", json.dumps(ingest.pipeline.stats.snapshot(), sort_keys=True))
    return 0


def _cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from datahub.api.app import create_app

    host = args.host or settings.api.host
    port = args.port or settings.api.port
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)
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

    registry = read_registry_csv(args.file, profiles=decoders.CATALOG)
    with db.connect(settings) as conn, conn.transaction():
        ids = suppliers.upsert_suppliers(conn, suppliers=registry.suppliers)
        inserted, updated = devices.upsert_devices(conn, devices=registry.devices, supplier_ids=ids)
    print(f"{inserted} devices added, {updated} updated, {len(ids)} suppliers")
    return 0


def _cmd_decode(settings: Settings, args: argparse.Namespace) -> int:
    try:
        profile = decoders.get_profile(args.profile)
    except KeyError:
        raise ConfigError(
            f"unknown profile {args.profile!r}; known: {', '.join(sorted(decoders.CATALOG))}"
        ) from None
    try:
        payload = bytes.fromhex(args.payload_hex)
    except ValueError:
        raise ConfigError(f"--payload-hex {args.payload_hex!r} is not hex") from None
    try:
        data = profile.decode(args.f_port, payload)
    except decoders.DecodeError as exc:
        print(json.dumps({"data": None, "warnings": [], "errors": [str(exc)]}, ensure_ascii=False))
        return 1
    print(json.dumps({"data": data, "warnings": [], "errors": []}, ensure_ascii=False))
    return 0


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

    p = commands.add_parser("decode", help="decode one payload with a catalog profile")
    p.add_argument("--profile", required=True, help="vendor/model, e.g. dragino/lht65")
    p.add_argument("--f-port", type=int, required=True)
    p.add_argument("--payload-hex", required=True)
    p.set_defaults(run=_cmd_decode)
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
