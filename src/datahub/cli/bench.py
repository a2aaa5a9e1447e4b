"""`datahub bench ingest|query|api|ops|scale|plot`: benchmark ingest, queries, the API under
load, the operator's views and what workers and processes add (docs/performance.md)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from datahub.bench import api, ingest, ops, query, scale
from datahub.bench.api import ApiOptions
from datahub.bench.ingest import IngestOptions
from datahub.bench.ops import OpsOptions
from datahub.bench.plot import plot
from datahub.bench.query import QueryOptions
from datahub.bench.scale import ScaleOptions
from datahub.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the actions of `datahub bench`."""
    sub = parser.add_subparsers(dest="bench_command", required=True, metavar="ACTION")

    q = sub.add_parser("ingest", help="ceilings, naive, end to end (QoS 0 and 1), latency")
    q.add_argument("--uplinks", type=int, default=100_000, help="uplinks per message set")
    q.add_argument("--workers", type=int, default=2, help="ingest processes (shared subscription)")
    q.add_argument("--naive-uplinks", type=int, default=3_000, help="uplinks of the naive run")
    q.add_argument("--latency-rate", type=float, default=1_000.0, help="uplinks/s, steady")
    q.add_argument("--latency-seconds", type=float, default=15.0)
    q.add_argument(
        "--mqtt-version",
        choices=["3.1.1", "5"],
        default="3.1.1",
        help="the workers' MQTT version (Mosquitto shares subscriptions with both)",
    )
    q.add_argument(
        "--database",
        default="datahub_bench_ingest",
        help="scratch database, dropped and created again: one per concurrent run",
    )
    _common(q)
    q.set_defaults(run=_cmd_ingest)

    q = sub.add_parser("query", help="p50/p95 of the API's queries on a large data set")
    q.add_argument("--devices", type=int, default=2000)
    q.add_argument("--days", type=int, default=90)
    q.add_argument("--repeat", type=int, default=50, help="timed requests per query")
    q.add_argument("--clients", type=int, default=16, help="concurrent clients of the rate test")
    q.add_argument("--rps-seconds", type=float, default=10.0)
    _common(q)
    q.set_defaults(run=_cmd_query)

    q = sub.add_parser("api", help="the API under concurrent load against the database alone")
    q.add_argument("--devices", type=int, default=2000)
    q.add_argument("--days", type=int, default=90)
    q.add_argument(
        "--clients", type=int, nargs="+", default=[16, 64], help="concurrent clients, each"
    )
    q.add_argument("--seconds", type=float, default=10.0, help="timed seconds per cell")
    q.add_argument("--warmup", type=float, default=2.0, help="untimed seconds before each")
    q.add_argument("--rounds", type=int, default=1, help="times to run every cell")
    q.add_argument("--workers", type=int, help="API worker processes (default: api.workers)")
    q.add_argument(
        "--kinds", nargs="+", help="request kinds to run (default: all, see docs/performance.md)"
    )
    q.add_argument(
        "--api-url", help="measure an API already running on the data set's database instead"
    )
    _common(q)
    q.set_defaults(run=_cmd_api)

    q = sub.add_parser("ops", help="operator views on a week of a scaled demo fleet; alert cost")
    q.add_argument("--scale", type=int, default=5, help="times each demo fleet's size")
    q.add_argument("--days", type=int, default=7)
    q.add_argument("--repeat", type=int, default=20, help="timed requests per view")
    q.add_argument("--alert-batches", type=int, default=20, help="batches per phase")
    q.add_argument("--database", default="datahub_bench_ops", help="scratch database")
    q.add_argument("--reuse", action="store_true", help="keep a fleet loaded by an earlier run")
    _common(q)
    q.set_defaults(run=_cmd_ops)

    q = sub.add_parser(
        "scale", help="ingest by 1, 2, 4 workers and the API by 1, 2 processes; cost per uplink"
    )
    q.add_argument("--uplinks", type=int, default=20_000, help="distinct uplinks per ingest run")
    q.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="ingest workers")
    q.add_argument("--api-workers", type=int, nargs="+", default=[1, 2], help="API processes")
    q.add_argument("--rounds", type=int, default=2, help="times to run every configuration")
    q.add_argument("--api-clients", type=int, default=16)
    q.add_argument("--api-seconds", type=float, default=5.0, help="timed seconds per API run")
    q.add_argument("--devices", type=int, default=200, help="of the API's data set")
    q.add_argument("--days", type=int, default=14, help="of the API's data set")
    q.add_argument("--mqtt-version", choices=("3.1.1", "5"), default="3.1.1")
    _common(q)
    q.set_defaults(run=_cmd_scale)

    q = sub.add_parser("plot", help="draw ingest and query results into one PNG")
    q.add_argument("--ingest", type=Path, help="a `bench ingest` JSON file")
    q.add_argument("--query", type=Path, help="a `bench query` JSON file")
    q.add_argument("--out", type=Path, required=True, help="the PNG to write")
    q.set_defaults(run=_cmd_plot)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document on one line")
    p.add_argument("--out", type=Path, help="also write the JSON document to this file")


def _emit(result: dict[str, Any], args: argparse.Namespace) -> int:
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps(result, sort_keys=True, indent=None if args.json else 2))
    return 0


def _workdir() -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="datahub-bench-"))
    print(f"bench: configs and logs of the processes under test in {workdir}", file=sys.stderr)
    return workdir


def _cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    options = IngestOptions(
        uplinks=args.uplinks,
        workers=args.workers,
        naive_uplinks=args.naive_uplinks,
        latency_rate=args.latency_rate,
        latency_seconds=args.latency_seconds,
        mqtt_version=args.mqtt_version,
        database=args.database,
    )
    return _emit(ingest.run(settings, options, _workdir()), args)


def _cmd_query(settings: Settings, args: argparse.Namespace) -> int:
    options = QueryOptions(
        devices=args.devices,
        days=args.days,
        repeat=args.repeat,
        clients=args.clients,
        rps_seconds=args.rps_seconds,
    )
    return _emit(query.run(settings, options, _workdir()), args)


def _cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    options = ApiOptions(
        devices=args.devices,
        days=args.days,
        clients=tuple(args.clients),
        seconds=args.seconds,
        warmup_s=args.warmup,
        rounds=args.rounds,
        workers=args.workers,
        kinds=tuple(args.kinds or api.KINDS),
        api_url=args.api_url,
    )
    return _emit(api.run(settings, options, _workdir()), args)


def _cmd_ops(settings: Settings, args: argparse.Namespace) -> int:
    options = OpsOptions(
        scale=args.scale,
        days=args.days,
        repeat=args.repeat,
        alert_batches=args.alert_batches,
        database=args.database,
        reuse=args.reuse,
    )
    return _emit(ops.run(settings, options, _workdir()), args)


def _cmd_scale(settings: Settings, args: argparse.Namespace) -> int:
    options = ScaleOptions(
        uplinks=args.uplinks,
        workers=tuple(args.workers),
        api_workers=tuple(args.api_workers),
        rounds=args.rounds,
        api_clients=args.api_clients,
        api_seconds=args.api_seconds,
        devices=args.devices,
        days=args.days,
        mqtt_version=args.mqtt_version,
    )
    return _emit(scale.run(settings, options, _workdir()), args)


def _cmd_plot(settings: Settings, args: argparse.Namespace) -> int:
    def load(path: Path | None) -> dict[str, Any] | None:
        return json.loads(path.read_text(encoding="utf-8")) if path and path.exists() else None

    plot(load(args.ingest), load(args.query), args.out)
    print(f"plot written to {args.out}")
    return 0
