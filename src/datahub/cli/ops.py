"""`datahub ops`: the operator's views of device and gateway health and of what the ingest
could not place.

They run through the same functions as the operator API (`/v1/operations/…`, `/v1/admin/…`)
and print its shapes with `--json`. An error (an unknown name) is exit 2.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from datahub.api import ops_schemas as out
from datahub.catalog import open_catalog
from datahub.cli.arguments import aware_time
from datahub.cli.console import print_json, print_table, transaction
from datahub.config import Settings
from datahub.domain import City
from datahub.errors import NotFound
from datahub.ops import views
from datahub.ops.health import Status
from datahub.ops.refresh import HealthRefresher
from datahub.storage import dead_letters, device_health, unplaced

# What the ingest could not place ----------------------------------------------------------


def _unknown_devices(settings: Settings, args: argparse.Namespace) -> int:
    with transaction(settings) as conn:
        rows = unplaced.list_unknown_devices(conn, since=args.since, city=args.city)
    if args.json:
        print_json([out.unknown_device_out(r) for r in rows])
        return 0
    print_table(
        [
            (
                r.dev_eui,
                r.uplinks,
                r.first_seen,
                r.last_seen,
                r.source,
                r.city,
                r.gateways,
                "yes" if r.registered else "no",
                r.last_payload.hex(),
            )
            for r in rows
        ],
        (
            "DEV_EUI",
            "UPLINKS",
            "FIRST",
            "LAST",
            "SOURCE",
            "CITY",
            "GATEWAYS",
            "REGISTERED",
            "LAST_PAYLOAD",
        ),
    )
    return 0


def _decode_failures(settings: Settings, args: argparse.Namespace) -> int:
    with transaction(settings) as conn:
        rows = unplaced.list_decode_failures(conn, since=args.since, profile=args.profile)
    if args.json:
        print_json([out.decode_failure_out(r) for r in rows])
        return 0
    print_table(
        [(r.profile, r.status, r.uplinks, r.devices, r.last_seen, r.last_error) for r in rows],
        ("PROFILE", "STATUS", "UPLINKS", "DEVICES", "LAST", "LAST_ERROR"),
    )
    return 0


def _dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    with transaction(settings) as conn:
        if args.id is not None:
            letter = dead_letters.get_dead_letter(conn, letter_id=args.id)
            if letter is None:
                raise NotFound(f"no dead letter {args.id}")
            print_json(out.dead_letter_body_out(letter))
            return 0
        rows = dead_letters.list_dead_letters(
            conn,
            stage=args.stage,
            reason=args.reason,
            source=args.source,
            since=args.since,
            until=args.until,
            limit=args.limit,
        )
    if args.json:
        print_json([out.dead_letter_out(r) for r in rows])
        return 0
    print_table(
        [(r.id, r.received_at, r.source, r.stage, r.reason, r.body_length, r.detail) for r in rows],
        ("ID", "RECEIVED", "SOURCE", "STAGE", "REASON", "BYTES", "DETAIL"),
    )
    return 0


# Health -----------------------------------------------------------------------------------


def _devices(settings: Settings, args: argparse.Namespace) -> int:
    catalog = open_catalog(settings)

    def interval_of(profile: str) -> int | None:
        found = catalog.get(profile)
        return found.reporting_interval_s if found is not None else None

    with transaction(settings) as conn:
        if args.refresh:
            HealthRefresher(settings.health).refresh_due(conn)
        rows = device_health.list_device_health(conn, city=args.city, supplier=args.supplier)
    found = views.device_views(
        rows, interval_of=interval_of, now=datetime.now(UTC), settings=settings.health
    )
    shown = [v for v in found if args.status is None or v.status == args.status]
    if args.json:
        print_json([out.device_out(v) for v in shown])
        return 0
    print_table(
        [
            (
                v.row.dev_eui,
                v.row.city,
                v.row.profile,
                v.status,
                v.row.last_seen_at,
                v.expected_interval_s,
                _ratio(v.row.frames_24h, v.row.lost_24h),
                _ratio(v.row.frames_7d, v.row.lost_7d),
                v.row.rssi_median,
                v.row.snr_median,
                v.row.battery_value,
                v.row.battery_empty_at,
                v.airtime_share,
            )
            for v in shown
        ],
        (
            "DEV_EUI",
            "CITY",
            "PROFILE",
            "STATUS",
            "LAST_SEEN",
            "INTERVAL_S",
            "LOSS_24H",
            "LOSS_7D",
            "RSSI",
            "SNR",
            "BATTERY",
            "EMPTY_AT",
            "AIRTIME",
        ),
    )
    return 0


def _ratio(received: int | None, lost: int | None) -> str | None:
    if received is None or lost is None or not received + lost:
        return None
    return f"{lost / (received + lost):.1%}"


def _gateways(settings: Settings, args: argparse.Namespace) -> int:
    with transaction(settings) as conn:
        links = device_health.list_gateway_links(conn, city=args.city)
    found = views.gateway_views(
        links, now=datetime.now(UTC), silent_after_s=settings.health.gateway_silent_after_s
    )
    if args.json:
        print_json([out.gateway_out(g) for g in found])
        return 0
    print_table(
        [
            (
                g.gateway_id,
                g.city,
                g.source,
                g.status,
                g.last_heard_at,
                g.uplinks_per_hour,
                g.devices_24h,
                g.rssi[1] if g.rssi else None,
                g.snr[1] if g.snr else None,
            )
            for g in found
        ],
        (
            "GATEWAY",
            "CITY",
            "NETWORK",
            "STATUS",
            "LAST_HEARD",
            "UPLINKS/H",
            "DEVICES",
            "RSSI",
            "SNR",
        ),
    )
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the actions of `datahub ops`."""
    sub = parser.add_subparsers(dest="ops_command", required=True, metavar="ACTION")

    q = sub.add_parser("devices", help="devices with status, loss, radio, battery, airtime")
    q.add_argument("--city", choices=[c.value for c in City])
    q.add_argument("--supplier")
    q.add_argument("--status", choices=[s.value for s in Status])
    q.add_argument("--refresh", action="store_true", help="recompute the devices due first")
    q.add_argument("--json", action="store_true")
    q.set_defaults(run=_devices)

    q = sub.add_parser("gateways", help="gateways with status, uplinks per hour, devices heard")
    q.add_argument("--city", choices=[c.value for c in City])
    q.add_argument("--json", action="store_true")
    q.set_defaults(run=_gateways)

    q = sub.add_parser("unknown-devices", help="DevEUIs heard without being registered")
    q.add_argument("--since", type=aware_time, help="uplinks received since (ISO 8601)")
    q.add_argument("--city", choices=[c.value for c in City])
    q.add_argument("--json", action="store_true")
    q.set_defaults(run=_unknown_devices)

    q = sub.add_parser("decode-failures", help="undecoded uplinks of known devices, per profile")
    q.add_argument("--since", type=aware_time)
    q.add_argument("--profile")
    q.add_argument("--json", action="store_true")
    q.set_defaults(run=_decode_failures)

    q = sub.add_parser("dead-letters", help="messages the ingest kept as dead letters")
    q.add_argument("id", type=int, nargs="?", help="show this one with its original bytes")
    q.add_argument("--stage", choices=["envelope", "decode", "store"])
    q.add_argument("--reason")
    q.add_argument("--source")
    q.add_argument("--since", type=aware_time)
    q.add_argument("--until", type=aware_time)
    q.add_argument("--limit", type=int, default=100)
    q.add_argument("--json", action="store_true")
    q.set_defaults(run=_dead_letters)
