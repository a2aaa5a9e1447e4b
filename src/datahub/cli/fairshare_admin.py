"""`datahub fairshare supplier|dataset|consumer|key|grant|tariff|seed`: the administration.

Each command runs in one transaction through the rules of datahub.fairshare.admin, which
the admin API uses too; an error (unknown slug, duplicate, refused tariff) is exit 2.
`--json` prints the admin API's shapes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datahub.api import admin_schemas as out
from datahub.catalog import open_catalog
from datahub.cli.arguments import (
    NONE,
    actor_of,
    aware_time,
    count,
    count_or_none,
    slug,
    slug_or_none,
    yes_no,
)
from datahub.cli.console import cell as _cell
from datahub.cli.console import print_json as _print_json
from datahub.cli.console import print_table as _table
from datahub.cli.console import transaction as _transaction
from datahub.config import Settings
from datahub.domain import NO_LICENCE, NO_LICENCE_NAME, LicenceClass, Purpose
from datahub.errors import ConfigError
from datahub.fairshare import admin, seed
from datahub.fairshare.keys import Scope
from datahub.privacy import PrivacyClass
from datahub.storage import consumers, datasets, suppliers
from datahub.storage.datasets import DatasetFields
from datahub.storage.tariffs import Price

Handler = Callable[[Settings, argparse.Namespace], int]


# Suppliers --------------------------------------------------------------------------------


def _supplier_add(settings: Settings, args: argparse.Namespace) -> int:
    with _transaction(settings) as conn:
        record = admin.add_supplier(
            conn, actor=actor_of(args), slug=args.slug, name=args.name, kind=args.kind
        )
    print(f"supplier {record.slug} added, with its own restricted dataset {record.slug}")
    return 0


def _supplier_list(settings: Settings, args: argparse.Namespace) -> int:
    with _transaction(settings) as conn:
        records = suppliers.list_suppliers(conn)
    if args.json:
        _print_json([out.supplier_out(r) for r in records])
        return 0
    _table(
        [(r.slug, r.kind, r.device_count, r.datasets, r.name) for r in records],
        ("SLUG", "KIND", "DEVICES", "DATASETS", "NAME"),
    )
    return 0


# Datasets ---------------------------------------------------------------------------------


def _dataset_add(settings: Settings, args: argparse.Namespace) -> int:
    fields = DatasetFields(
        name=args.name,
        licence_class=args.licence_class,
        licence_id=args.licence_id,
        licence_name=args.licence_name,
        licence_url=args.licence_url,
        attribution=args.attribution,
        privacy=args.privacy,
    )
    with _transaction(settings) as conn:
        record = admin.add_dataset(
            conn, actor=actor_of(args), slug=args.slug, supplier=args.supplier, fields=fields
        )
    print(f"dataset {record.slug} of {record.supplier_slug} added ({record.licence_class})")
    return 0


_CLEARABLE = (
    "licence_url",
    "title_en",
    "description_de",
    "description_en",
    "contact_name",
    "contact_email",
    "licence_uri",
    "contributor_id",
    "legal_basis",
)
_RETENTION = ("uplink_retention_days", "reading_retention_days")


def _dataset_update(settings: Settings, args: argparse.Namespace) -> int:
    names = (
        "name",
        "licence_class",
        "licence_id",
        "licence_name",
        "attribution",
        "privacy",
        *_CLEARABLE,
        "keywords",
        "themes",
        "catalogue_listed",
        "public_summaries",
        *_RETENTION,
    )
    changes: dict[str, Any] = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    for name in _CLEARABLE:
        if changes.get(name) == "":
            changes[name] = None
    for name in _RETENTION:
        if changes.get(name) == NONE:
            changes[name] = None
    if not changes:
        raise ConfigError("nothing to change: give at least one option")
    with _transaction(settings) as conn:
        record, changed = admin.update_dataset(
            conn, actor=actor_of(args), slug=args.slug, changes=changes, now=datetime.now(UTC)
        )
    print(f"dataset {record.slug} {'updated' if changed else 'unchanged'}")
    return 0


def _dataset_list(settings: Settings, args: argparse.Namespace) -> int:
    with _transaction(settings) as conn:
        owner = admin.supplier_id(conn, args.supplier) if args.supplier else None
        records = datasets.list_datasets(conn, supplier_id=owner)
    if args.json:
        _print_json([out.dataset_out(r) for r in records])
        return 0
    _table(
        [
            (r.slug, r.supplier_slug, r.licence_class, r.licence_id, r.device_count, r.name)
            for r in records
        ],
        ("SLUG", "SUPPLIER", "CLASS", "LICENCE", "DEVICES", "NAME"),
    )
    return 0


# Consumers --------------------------------------------------------------------------------


def _consumer_add(settings: Settings, args: argparse.Namespace) -> int:
    with _transaction(settings) as conn:
        record = admin.add_consumer(
            conn,
            actor=actor_of(args),
            slug=args.slug,
            name=args.name,
            purpose=args.purpose,
            supplier=args.supplier,
            monthly_quota=args.monthly_quota,
            requests_per_s=args.requests_per_s,
        )
    print(
        f"consumer {record.slug} added ({record.purpose}); make it a key with "
        f"`datahub fairshare key create --consumer {record.slug}`"
    )
    return 0


def _consumer_update(settings: Settings, args: argparse.Namespace) -> int:
    names = ("name", "purpose", "supplier", "monthly_quota", "requests_per_s")
    # `none` clears an optional field; absent options keep theirs.
    changes: dict[str, Any] = {
        n: None if getattr(args, n) == NONE else getattr(args, n)
        for n in names
        if getattr(args, n) is not None
    }
    if not changes:
        raise ConfigError("nothing to change: give at least one option")
    with _transaction(settings) as conn:
        record, changed = admin.update_consumer(
            conn,
            actor=actor_of(args),
            slug=args.slug,
            changes=changes,
            now=datetime.now(UTC),
        )
    print(f"consumer {record.slug} {'updated' if changed else 'unchanged'}")
    return 0


def _consumer_list(settings: Settings, args: argparse.Namespace) -> int:
    with _transaction(settings) as conn:
        records = consumers.list_consumers(conn)
    if args.json:
        _print_json([out.consumer_out(r) for r in records])
        return 0
    _table(
        [
            (
                r.slug,
                r.purpose,
                r.supplier_slug,
                r.monthly_quota,
                r.requests_per_s,
                r.active_keys,
                r.grants,
                r.name,
            )
            for r in records
        ],
        ("SLUG", "PURPOSE", "FOR", "QUOTA/MONTH", "REQ/S", "KEYS", "GRANTS", "NAME"),
    )
    return 0


# Keys -------------------------------------------------------------------------------------


def _key_create(settings: Settings, args: argparse.Namespace) -> int:
    with _transaction(settings) as conn:
        record, secret = admin.create_key(
            conn,
            actor=actor_of(args),
            consumer=args.consumer,
            scopes=args.scope or ["read"],
            label=args.label,
        )
    if args.json:
        _print_json(out.new_key_out(record, secret))
        return 0
    print(secret)
    print(
        f"# key {record.prefix} of {record.consumer_slug}, scopes {','.join(record.scopes)}: "
        "shown this once, only its hash is kept",
    )
    return 0


def _key_revoke(settings: Settings, args: argparse.Namespace) -> int:
    with _transaction(settings) as conn:
        record = admin.revoke_key(conn, actor=actor_of(args), prefix=args.prefix)
    print(f"key {record.prefix} of {record.consumer_slug} revoked at {_cell(record.revoked_at)}")
    return 0


def _key_list(settings: Settings, args: argparse.Namespace) -> int:
    with _transaction(settings) as conn:
        records = admin.list_keys(conn, consumer=args.consumer)
    if args.json:
        _print_json([out.key_out(r) for r in records])
        return 0
    _table(
        [
            (r.prefix, r.consumer_slug, r.scopes, r.created_at, r.revoked_at, r.label)
            for r in records
        ],
        ("PREFIX", "CONSUMER", "SCOPES", "CREATED", "REVOKED", "LABEL"),
    )
    return 0


# Grants -----------------------------------------------------------------------------------


def _grant_add(settings: Settings, args: argparse.Namespace) -> int:
    with _transaction(settings) as conn:
        grant, created = admin.add_grant(
            conn, actor=actor_of(args), consumer=args.consumer, dataset=args.dataset
        )
    note = "" if grant.licence_class != LicenceClass.OPEN else " (open: anyone reads it anyway)"
    verb = "granted" if created else "already had"
    print(f"{grant.consumer_slug} {verb} dataset {grant.dataset_slug}{note}")
    return 0


def _grant_revoke(settings: Settings, args: argparse.Namespace) -> int:
    with _transaction(settings) as conn:
        admin.revoke_grant(conn, actor=actor_of(args), consumer=args.consumer, dataset=args.dataset)
    print(f"grant of dataset {args.dataset} to {args.consumer} revoked")
    return 0


def _grant_list(settings: Settings, args: argparse.Namespace) -> int:
    with _transaction(settings) as conn:
        records = admin.list_grants(conn, consumer=args.consumer, dataset=args.dataset)
    if args.json:
        _print_json([out.grant_out(r) for r in records])
        return 0
    _table(
        [(r.consumer_slug, r.dataset_slug, r.licence_class, r.granted_at) for r in records],
        ("CONSUMER", "DATASET", "CLASS", "GRANTED"),
    )
    return 0


# Tariffs ----------------------------------------------------------------------------------


def _tariff_add(settings: Settings, args: argparse.Namespace) -> int:
    price = Price(args.cents_per_million, args.shadow_cents_per_million, args.platform_fee_bp)
    with _transaction(settings) as conn:
        record = admin.add_tariff(
            conn,
            actor=actor_of(args),
            dataset=args.dataset,
            purpose=args.purpose,
            price=price,
            now=datetime.now(UTC),
            valid_from=args.valid_from,
        )
    print(
        f"tariff {record.dataset_slug}/{record.purpose} version {record.version} "
        f"from {_cell(record.valid_from)}"
    )
    return 0


def _tariff_list(settings: Settings, args: argparse.Namespace) -> int:
    with _transaction(settings) as conn:
        records = admin.list_tariffs(conn, at=datetime.now(UTC), dataset=args.dataset)
    if args.current:
        records = [r for r in records if r.current]
    if args.json:
        _print_json([out.tariff_out(r) for r in records])
        return 0
    _table(
        [
            (
                r.dataset_slug,
                r.licence_class,
                r.purpose,
                r.version,
                r.valid_from,
                r.price.cents_per_million,
                r.price.shadow_cents_per_million,
                r.price.platform_fee_basis_points,
                "yes" if r.current else "",
            )
            for r in records
        ],
        ("DATASET", "CLASS", "PURPOSE", "V", "VALID FROM", "CENTS/M", "SHADOW/M", "FEE BP", "NOW"),
    )
    return 0


# Seed -------------------------------------------------------------------------------------


def _seed(settings: Settings, args: argparse.Namespace) -> int:
    spec = seed.load_seed(args.file)
    with _transaction(settings) as conn:
        report = seed.apply_seed(conn, spec, now=datetime.now(UTC), actor=actor_of(args))
    unknown = sorted(spec.profiles() - set(open_catalog(settings)))
    if unknown:
        report.warnings.append(f"device rules name profiles not in the catalog: {unknown}")
    if args.json:
        print(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
        return 0
    for line in report.changes if args.verbose else []:
        print(line)
    print(f"fair share seeded from {args.file}: {report.summary()}")
    for line in report.warnings:
        print(f"warning: {line}")
    made = [k for k in report.keys if k.secret is not None]
    if made:
        print("demo keys, shown this once (only their hashes are kept);")
        print("send one as `Authorization: Bearer <key>`:")
        for k in made:
            print(f"  {k.purpose:16} {k.consumer:28} {k.secret}")
    held = [k for k in report.keys if k.secret is None]
    if held:
        print("demo keys exist already (shown only when made):")
        for k in held:
            print(
                f"  {k.purpose:16} {k.consumer:28} prefix {k.prefix}; a new one: "
                f"datahub fairshare key create --consumer {k.consumer} "
                + " ".join(f"--scope {s}" for s in k.scopes)
            )
    return 0


# Parser -----------------------------------------------------------------------------------


def _group(
    fairshare: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    p = fairshare.add_parser(name, help=help)
    return p.add_subparsers(dest=f"fairshare_{name}_command", required=True, metavar="ACTION")


def _command(
    group: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help: str,
    run: Handler,
    *,
    json_output: bool = False,
) -> argparse.ArgumentParser:
    p = group.add_parser(name, help=help)
    if json_output:
        p.add_argument("--json", action="store_true", help="print JSON (the admin API's shape)")
    p.set_defaults(run=run)
    return p


def add_commands(fairshare: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the administration subcommands to the `datahub fairshare` group."""
    classes = [c.value for c in LicenceClass]
    purposes = [p.value for p in Purpose]

    g = _group(fairshare, "supplier", "organisations that own devices")
    p = _command(g, "add", "add a supplier (with its own restricted dataset)", _supplier_add)
    p.add_argument("slug", type=slug)
    p.add_argument("--name", required=True)
    p.add_argument("--kind", default="other", help="e.g. city_department, utility, university")
    _command(g, "list", "list suppliers", _supplier_list, json_output=True)

    g = _group(fairshare, "dataset", "named sets of one supplier's devices, with a licence")
    p = _command(g, "add", "add a dataset", _dataset_add)
    p.add_argument("slug", type=slug)
    p.add_argument("--supplier", required=True, type=slug)
    p.add_argument("--name", required=True)
    p.add_argument("--licence-class", required=True, choices=classes)
    p.add_argument("--licence-id", required=True, help="e.g. dl-de/by-2-0, CC-BY-4.0")
    p.add_argument("--licence-name", required=True)
    p.add_argument(
        "--licence-url",
        help="where the licence's terms are, e.g. its dcat-ap.de IRI; required unless "
        f"--licence-id is {NO_LICENCE!r} ({NO_LICENCE_NAME}, for a licence not chosen yet)",
    )
    p.add_argument("--attribution", required=True, help="shown wherever the data is shown")
    p.add_argument(
        "--privacy",
        default=PrivacyClass.PUBLIC_INFRASTRUCTURE.value,
        choices=[c.value for c in PrivacyClass],
        help="what callers without a grant see of its devices (docs/privacy.md)",
    )
    p = _command(g, "update", "change a dataset's name, licence or attribution", _dataset_update)
    p.add_argument("slug", type=slug)
    p.add_argument("--name")
    p.add_argument("--licence-class", choices=classes)
    p.add_argument("--licence-id")
    p.add_argument("--licence-name")
    p.add_argument("--licence-url", help=f"'' removes it, with --licence-id {NO_LICENCE} only")
    p.add_argument("--attribution")
    p.add_argument("--privacy", choices=[c.value for c in PrivacyClass])
    catalogue = p.add_argument_group("open-data catalogue ('' clears a text)")
    catalogue.add_argument("--title-en")
    catalogue.add_argument("--description-de")
    catalogue.add_argument("--description-en")
    catalogue.add_argument(
        "--keyword", dest="keywords", action="append", help="repeat for more; replaces the list"
    )
    catalogue.add_argument(
        "--theme", dest="themes", action="append", help="EU data theme, e.g. ENVI; repeat"
    )
    catalogue.add_argument("--contact-name")
    catalogue.add_argument("--contact-email")
    catalogue.add_argument("--licence-uri", help="from the dcat-ap.de licence list")
    catalogue.add_argument("--contributor-id", help="from the dcat-ap.de contributor list")
    governance = p.add_argument_group("retention and legal basis (docs/privacy.md)")
    for name in _RETENTION:
        governance.add_argument(
            f"--{name.replace('_', '-')}",
            type=count_or_none,
            metavar="DAYS",
            help="days raw data is kept (the rollups stay); none: for ever",
        )
    governance.add_argument("--legal-basis", help="e.g. 'Art. 6(1)(e) GDPR: …'; '' clears it")
    catalogue.add_argument(
        "--catalogue-listed",
        type=yes_no,
        metavar="yes|no",
        help="the supplier lets a restricted or commercial dataset be listed",
    )
    catalogue.add_argument(
        "--public-summaries",
        type=yes_no,
        metavar="yes|no",
        help="the supplier lets open summaries (per district, k devices or more) be published",
    )
    p = _command(g, "list", "list datasets", _dataset_list, json_output=True)
    p.add_argument("--supplier", type=slug)

    g = _group(fairshare, "consumer", "holders of API keys, with a purpose")
    p = _command(g, "add", "add a consumer", _consumer_add)
    p.add_argument("slug", type=slug)
    p.add_argument("--name", required=True)
    p.add_argument("--purpose", required=True, choices=purposes)
    p.add_argument("--supplier", type=slug, help="the supplier it acts for")
    p.add_argument("--monthly-quota", type=count, help="observations per month")
    p.add_argument("--requests-per-s", type=count)
    p = _command(g, "update", "change a consumer; `none` clears an option", _consumer_update)
    p.add_argument("slug", type=slug)
    p.add_argument("--name")
    p.add_argument("--purpose", choices=purposes)
    p.add_argument("--supplier", type=slug_or_none, help="a slug, or none")
    p.add_argument("--monthly-quota", type=count_or_none, help="a number, or none")
    p.add_argument("--requests-per-s", type=count_or_none, help="a number, or none")
    _command(g, "list", "list consumers", _consumer_list, json_output=True)

    g = _group(fairshare, "key", "API keys: shown once, stored hashed")
    p = _command(g, "create", "make a key and print it, this once", _key_create, json_output=True)
    p.add_argument("--consumer", required=True, type=slug)
    p.add_argument(
        "--scope",
        action="append",
        choices=[s.value for s in Scope],
        help="repeat for more (default: read)",
    )
    p.add_argument("--label", default="", help="what the key is for")
    p = _command(g, "revoke", "revoke a key by its prefix", _key_revoke)
    p.add_argument("prefix")
    p = _command(g, "list", "list keys by prefix (never the keys)", _key_list, json_output=True)
    p.add_argument("--consumer", type=slug)

    g = _group(fairshare, "grant", "consumers' access to restricted and commercial datasets")
    for name, help, run in (
        ("add", "grant a consumer a dataset", _grant_add),
        ("revoke", "withdraw a grant", _grant_revoke),
    ):
        p = _command(g, name, help, run)
        p.add_argument("--consumer", required=True, type=slug)
        p.add_argument("--dataset", required=True, type=slug)
    p = _command(g, "list", "list grants", _grant_list, json_output=True)
    p.add_argument("--consumer", type=slug)
    p.add_argument("--dataset", type=slug)

    g = _group(fairshare, "tariff", "prices per dataset and purpose, versioned")
    p = _command(g, "add", "add the next version of a tariff", _tariff_add)
    p.add_argument("--dataset", required=True, type=slug)
    p.add_argument("--purpose", required=True, choices=purposes)
    p.add_argument("--cents-per-million", required=True, type=count, help="0 on open data")
    p.add_argument("--shadow-cents-per-million", required=True, type=count)
    p.add_argument("--platform-fee-bp", required=True, type=count, help="basis points: 1 %% = 100")
    p.add_argument("--valid-from", type=aware_time, help="ISO 8601 with offset (default: now)")
    p = _command(g, "list", "list tariff versions", _tariff_list, json_output=True)
    p.add_argument("--dataset", type=slug)
    p.add_argument("--current", action="store_true", help="only the versions in force now")

    p = fairshare.add_parser(
        "seed", help="create or update a fair-share set-up from a YAML file (idempotent)"
    )
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true")
    p.add_argument("--verbose", action="store_true", help="list every change")
    p.set_defaults(run=_seed)
