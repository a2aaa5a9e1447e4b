"""`datahub simulate`: publish simulated uplinks of both cities to the configured sources."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

import simulators
from datahub.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `datahub simulate`."""
    parser.add_argument("--scenario", type=Path, help="scenario file (default: the demo scenario)")
    parser.add_argument("--count", type=int, help="stop after this many uplinks")
    parser.add_argument(
        "--rate", type=float, help="uplinks per second (default: as fast as possible)"
    )
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--speed", type=float, help="report at the devices' intervals, sped up")
    parser.add_argument("--history", type=float, help="first send this many hours of past uplinks")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--qos", type=int, choices=(0, 1), default=1)
    parser.add_argument(
        "--registry", type=Path, help="write the scenario's device registry CSV and exit"
    )
    parser.set_defaults(run=_simulate)


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
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
