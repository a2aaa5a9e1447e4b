"""`datahub simulate`: publish simulated uplinks; DESCRIPTION says how, and what a seed does."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from datetime import timedelta
from pathlib import Path

import simulators
from datahub.config import Settings

# Seeds drawn for a run: nine digits, easy to copy from the start line.
_SEEDS = 10**9

DESCRIPTION = """\
Publish the uplinks of the scenario's simulated devices, as their network servers (The
Things Stack v3, ChirpStack) publish them, to the brokers of the sources in the settings.
Devices report in turns as their intervals say; uplinks are dated when they are sent.
Runs until --count or --duration, or Ctrl-C; then prints a JSON report on stdout.

The seed fixes the values, the radio, the devices' sessions and frame counters. Without
--seed each run draws a new one and prints it on stderr. Every run publishes new uplinks,
dated when they are sent: a seed used before repeats its values and frame counters at
new times, which the hub stores as new uplinks, as from devices whose frame counters
were reset (the dedup key: docs/architecture.md).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `datahub simulate`."""
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--scenario",
        type=Path,
        metavar="FILE",
        help="the fleets to simulate, a YAML file (default: the demo scenario of Dortmund "
        "and Schwerte)",
    )
    parser.add_argument(
        "--count", type=int, metavar="N", help="stop after N uplinks (default: no limit)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        metavar="PER_S",
        help="publish this many uplinks per second (default: as fast as the broker takes them)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="stop after this many seconds (default: no limit)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        metavar="X",
        help="send each uplink when its device would report, X times faster than the "
        "devices' real intervals (1: real time); with --rate, the slower of the two",
    )
    parser.add_argument(
        "--history",
        type=float,
        metavar="HOURS",
        help="first send what every device reported in the past HOURS, dated when it was "
        "due and without waiting for --speed (--rate still applies); then go on live",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="the random stream of values, radio, sessions and frame counters; a seed used "
        "before repeats them at new times, as new uplinks (default: a new seed each run, "
        "printed at the start)",
    )
    parser.add_argument(
        "--qos",
        type=int,
        choices=(0, 1),
        default=1,
        help="MQTT QoS of the publishes (default: 1, the broker acknowledges each one)",
    )
    parser.add_argument(
        "--registry",
        type=Path,
        metavar="FILE",
        help="write the scenario's device registry CSV (for `datahub devices import`) to "
        "FILE and exit, publishing nothing",
    )
    parser.set_defaults(run=_simulate)


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    scenario = simulators.load_scenario(args.scenario or simulators.DEFAULT_SCENARIO)
    if args.registry:
        written = simulators.write_registry_csv(scenario, args.registry)
        print(f"registry of {written} devices written to {args.registry}")
        return 0
    if args.seed is None:
        seed = secrets.randbelow(_SEEDS)
        note = f"a new one; --seed {seed} repeats these values and frame counters"
    else:
        seed = args.seed
        note = "given; used before, it repeats values and frame counters at new times"
    print(f"datahub simulate: seed {seed} ({note})", file=sys.stderr, flush=True)
    report = simulators.simulate(
        scenario,
        settings,
        count=args.count,
        rate=args.rate,
        duration=args.duration,
        seed=seed,
        qos=args.qos,
        history=timedelta(hours=args.history) if args.history else None,
        speed=args.speed,
    )
    print(json.dumps({**report.as_json(), "seed": seed}, sort_keys=True))
    return 0
