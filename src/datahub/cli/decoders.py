"""`datahub decoders list|test`: the device catalog, built-in decoders and JS codecs."""

from __future__ import annotations

import argparse
import dataclasses
import json

from datahub.catalog import list_profiles, open_catalog, replay_examples
from datahub.config import Settings
from datahub.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the actions of `datahub decoders`."""
    sub = parser.add_subparsers(dest="decoders_command", required=True, metavar="ACTION")
    p = sub.add_parser("list", help="list every profile with its kind, version and metrics")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_list)
    p = sub.add_parser("test", help="replay every profile's examples; non-zero on a failure")
    p.add_argument("--profile", help="only this vendor/model")
    p.set_defaults(run=_test)


def _list(settings: Settings, args: argparse.Namespace) -> int:
    profiles = list_profiles(open_catalog(settings))
    if args.json:
        print(json.dumps([dataclasses.asdict(p) for p in profiles], indent=2))
        return 0
    for p in profiles:
        print(f"{p.id:32} {p.kind:10} {p.version:12}  {', '.join(p.metrics)}")
    return 0


def _test(settings: Settings, args: argparse.Namespace) -> int:
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
