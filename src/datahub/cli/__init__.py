"""The `datahub` command: builds the settings once and passes them to each subcommand.

Each command is a module of this package that adds its arguments (`add_arguments`) and
runs it. Only the module of the command given is imported: importing all of them, and
so the API, the ingest, Alembic, the simulators and the benchmarks, costs about 1.0 s
of CPU at every start (1.4 s instead of 0.4 s, python -X importtime), which a
`datahub decode` or `datahub fairshare key create` would pay for nothing.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from datahub.config import load_settings
from datahub.errors import DatahubError
from datahub.logs import configure_logging

# command -> (its module in this package, what it does), in the order `--help` lists them
COMMANDS = {
    "migrate": ("migrate", "create or upgrade the database schema"),
    "ingest": ("ingest", "subscribe to every source and store uplinks"),
    "backfill": ("backfill", "store a TTN source's uplinks from its Storage Integration"),
    "api": ("api", "serve the REST API"),
    "simulate": ("simulate", "publish simulated uplinks of both cities"),
    "devices": ("devices", "manage the device registry"),
    "decode": ("decode", "decode one payload with a profile or a JS codec"),
    "decoders": ("decoders", "the device catalog: built-in and JS codecs"),
    "redecode": ("redecode", "decode stored uplinks again and replace their readings"),
    "opendata": ("opendata", "open data: the bulk files"),
    "fairshare": (
        "fairshare",
        "fair share: suppliers, datasets, consumers, keys, tariffs, periods",
    ),
    "ops": ("ops", "operator views: health, gateways, what was not placed"),
    "alerts": ("alerts", "alert rules, alarms and the delivery log"),
    "audit": ("audit", "the audit log of administrative changes; verify its hash chain"),
    "retention": ("retention", "delete raw data past each dataset's retention"),
    "bench": ("bench", "benchmark ingest and queries (docs/performance.md)"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the parser of every command, with the arguments of `command` (None: none)."""
    parser = argparse.ArgumentParser(prog="datahub", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="YAML config file (default: $DATAHUB_CONFIG)")
    parser.add_argument(
        "--as",
        dest="as_name",
        metavar="NAME",
        help="who you are, for the audit log beside your OS user (e.g. a shared account)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help) in COMMANDS.items():
        p = commands.add_parser(name, help=help)
        if name == command:
            importlib.import_module(f"{__name__}.{module}").add_arguments(p)
    return parser


def command_of(argv: Sequence[str]) -> str | None:
    """Return the command `argv` names, or None."""
    # Only --config and --as come before the command; its own arguments are left alone.
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--config")
    first.add_argument("--as")
    first.add_argument("command", nargs="?")
    known, _ = first.parse_known_args(argv)
    return known.command if known.command in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command of `argv` (default: the process's arguments); return its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(command_of(argv)).parse_args(argv)
    try:
        settings = load_settings(args.config)
        configure_logging(settings)
        return int(args.run(settings, args))
    except DatahubError as exc:
        print(f"datahub: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
