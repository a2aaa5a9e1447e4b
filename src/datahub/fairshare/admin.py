"""Administration: the rules for suppliers, datasets, consumers, keys, grants and tariffs.

The CLI (`datahub fairshare …`), the admin API (`/v1/admin/…`) and the demo seed all
write through these functions, so each rule lives here once; each change appends its
entry to the audit log (datahub.audit) in the same transaction, naming `actor`. They raise the API's
errors (BadRequest, NotFound, Conflict), which the CLI reports as exit status 2.
Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg

from datahub import audit
from datahub.domain import NO_LICENCE, NO_LICENCE_NAME, SLUG, LicenceClass, Purpose
from datahub.errors import BadRequest, Conflict, NotFound
from datahub.fairshare import keys
from datahub.fairshare.close import period_bounds
from datahub.fairshare.keys import Scope
from datahub.opendata import vocabularies
from datahub.privacy import PrivacyClass
from datahub.storage import consumers, datasets, periods, suppliers, tariffs, usage
from datahub.storage.consumers import ConsumerFields, ConsumerRecord, GrantRecord, KeyRecord
from datahub.storage.datasets import (
    DatasetFields,
    DatasetGovernance,
    DatasetMetadata,
    DatasetRecord,
)
from datahub.storage.suppliers import SupplierRecord, SupplierRow
from datahub.storage.tariffs import Price, TariffRecord

MAX_BASIS_POINTS = 10_000


# Pure rules -------------------------------------------------------------------------------


def check_slug(what: str, slug: str) -> str:
    """Return `slug` if it is a lower-case slug; BadRequest otherwise."""
    if not SLUG.fullmatch(slug):
        raise BadRequest(
            f"{what} slug {slug!r} must be lower-case letters, digits and '-', "
            "at most 63 characters, not starting with '-'"
        )
    return slug


def check_text(what: str, value: str) -> str:
    """Return `value` stripped; BadRequest if it is empty or holds a NUL character."""
    if not value.strip():
        raise BadRequest(f"{what} must not be empty")
    if "\x00" in value:
        raise BadRequest(f"{what} must not contain NUL characters")
    return value.strip()


def check_scopes(scopes: Collection[str]) -> tuple[str, ...]:
    """Return the scopes in canonical order; BadRequest for none or an unknown one."""
    unknown = sorted(set(scopes) - set(Scope))
    if unknown:
        raise BadRequest(f"unknown scope {', '.join(unknown)}; scopes are {', '.join(Scope)}")
    if not scopes:
        raise BadRequest("a key needs at least one scope")
    if {Scope.ADMIN, Scope.OMBUDSMAN} <= set(scopes):
        raise BadRequest("a key is not both 'admin' and 'ombudsman': the ombudsman changes nothing")
    return tuple(s.value for s in Scope if s in scopes)


def check_consumer_limits(*, monthly_quota: int | None, requests_per_s: int | None) -> None:
    """Refuse a negative quota or a rate limit below one request per second."""
    if monthly_quota is not None and monthly_quota < 0:
        raise BadRequest(f"monthly quota {monthly_quota} must be 0 or more observations")
    if requests_per_s is not None and requests_per_s < 1:
        raise BadRequest(f"requests per second {requests_per_s} must be at least 1")


def check_price(licence_class: LicenceClass, price: Price) -> None:
    """Refuse a negative price, a fee outside 0..100 %, and any price on open data.

    Open data is free to everyone; only its shadow price, which values its use, is set.
    """
    if price.cents_per_million < 0 or price.shadow_cents_per_million < 0:
        raise BadRequest("prices are cents per million observations, 0 or more")
    if not 0 <= price.platform_fee_basis_points <= MAX_BASIS_POINTS:
        raise BadRequest(
            f"platform fee {price.platform_fee_basis_points} basis points is not within "
            f"0..{MAX_BASIS_POINTS}"
        )
    if licence_class is LicenceClass.OPEN and price.cents_per_million > 0:
        raise BadRequest(
            "open data is free: an open dataset's tariff has cents_per_million 0; "
            "set its shadow price to value its use"
        )


def next_tariff_version(
    *, latest: TariffRecord | None, valid_from: datetime, rated_until: datetime | None
) -> int:
    """Return the number of a new version valid from `valid_from`, or refuse it.

    A new version starts after the latest one and after the last closed period: versions
    add to history, they never rewrite what was rated or what an earlier version said.
    """
    if valid_from.tzinfo is None:
        raise BadRequest("valid_from needs a UTC offset")
    if rated_until is not None and valid_from < rated_until:
        raise BadRequest(
            f"valid_from {_iso(valid_from)} falls in a closed period; a new version may "
            f"start at {_iso(rated_until)} at the earliest"
        )
    if latest is None:
        return 1
    if valid_from <= latest.valid_from:
        raise BadRequest(
            f"valid_from {_iso(valid_from)} is not after version {latest.version}'s "
            f"({_iso(latest.valid_from)}); versions must not rewrite history"
        )
    return latest.version + 1


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# Suppliers --------------------------------------------------------------------------------


def add_supplier(
    conn: psycopg.Connection, *, slug: str, name: str, kind: str, actor: str
) -> SupplierRecord:
    """Add a supplier with its own restricted dataset (named by the supplier's slug)."""
    row = SupplierRow(
        check_slug("supplier", slug), check_text("name", name), check_text("kind", kind)
    )
    if suppliers.insert_supplier(conn, supplier=row) is None:
        raise Conflict(f"supplier {slug!r} exists")
    (record,) = suppliers.list_suppliers(conn, slug=slug)
    audit.record(conn, actor=actor, action="supplier.add", target=f"supplier:{slug}", after=record)
    return record


def update_supplier(
    conn: psycopg.Connection, *, slug: str, name: str, kind: str, actor: str
) -> SupplierRecord:
    """Rename a supplier or change its kind; NotFound if there is none."""
    before = suppliers.list_suppliers(conn, slug=slug)
    if not before:
        raise NotFound(f"no supplier {slug!r}")
    row = SupplierRow(slug, check_text("name", name), check_text("kind", kind))
    suppliers.update_supplier(conn, supplier=row)
    (after,) = suppliers.list_suppliers(conn, slug=slug)
    if after != before[0]:
        audit.record(
            conn,
            actor=actor,
            action="supplier.update",
            target=f"supplier:{slug}",
            before=before[0],
            after=after,
        )
    return after


def supplier_id(conn: psycopg.Connection, slug: str) -> int:
    """Return a supplier's id; NotFound if there is none."""
    ids = suppliers.select_supplier_ids(conn, slugs=[slug])
    if slug not in ids:
        raise NotFound(f"no supplier {slug!r}")
    return ids[slug]


# Datasets ---------------------------------------------------------------------------------


def get_dataset(conn: psycopg.Connection, slug: str) -> DatasetRecord:
    """Return a dataset; NotFound if there is none."""
    record = datasets.get_dataset(conn, slug=slug)
    if record is None:
        raise NotFound(f"no dataset {slug!r}")
    return record


def _check_dataset_fields(fields: DatasetFields) -> DatasetFields:
    try:
        licence_class = LicenceClass(fields.licence_class)
    except ValueError:
        classes = ", ".join(c.value for c in LicenceClass)
        raise BadRequest(
            f"licence class {fields.licence_class!r} is not one of {classes}"
        ) from None
    try:
        privacy = PrivacyClass(fields.privacy)
    except ValueError:
        classes = ", ".join(c.value for c in PrivacyClass)
        raise BadRequest(f"privacy class {fields.privacy!r} is not one of {classes}") from None
    url = check_text("licence URL", fields.licence_url) if fields.licence_url else None
    if url is not None and not url.startswith(("https://", "http://")):
        raise BadRequest(f"licence URL {url!r} must be an http(s) URL")
    licence_id, licence_name = _check_licence(
        licence_class,
        check_text("licence id", fields.licence_id),
        check_text("licence name", fields.licence_name),
        url,
    )
    return DatasetFields(
        name=check_text("name", fields.name),
        licence_class=licence_class.value,
        licence_id=licence_id,
        licence_name=licence_name,
        licence_url=url,
        attribution=check_text("attribution", fields.attribution),
        privacy=privacy.value,
    )


def _check_licence(
    licence_class: LicenceClass, licence_id: str, name: str, url: str | None
) -> tuple[str, str]:
    """Return a dataset's licence id and name: a licence has a URL, or it is `none`.

    A client must be able to look up the terms a dataset comes with, or be told plainly
    that there are none yet; open data is reusable only under a licence.
    """
    if licence_id.lower() != NO_LICENCE:
        if url is None:
            raise BadRequest(
                f"licence {licence_id!r} needs a licence URL (e.g. its dcat-ap.de IRI, "
                f"{vocabularies.LICENCES}dl-by-de/2.0 or {vocabularies.LICENCES}other-closed), "
                f"or the licence id {NO_LICENCE!r} ({NO_LICENCE_NAME})"
            )
        return licence_id, name
    if url is not None:
        raise BadRequest(f"licence {NO_LICENCE!r} ({NO_LICENCE_NAME}) has no URL; got {url!r}")
    if name != NO_LICENCE_NAME:
        raise BadRequest(f"licence {NO_LICENCE!r} is named {NO_LICENCE_NAME!r}, not {name!r}")
    if licence_class is LicenceClass.OPEN:
        raise BadRequest(
            f"an open dataset needs a licence: open data is reusable only under one, not "
            f"with {NO_LICENCE!r} ({NO_LICENCE_NAME})"
        )
    return NO_LICENCE, name


def add_dataset(
    conn: psycopg.Connection, *, slug: str, supplier: str, fields: DatasetFields, actor: str
) -> DatasetRecord:
    """Add a dataset of a supplier; its devices are assigned by the registry or the seed."""
    check_slug("dataset", slug)
    owner = supplier_id(conn, supplier)
    if (
        datasets.insert_dataset(
            conn, slug=slug, supplier_id=owner, fields=_check_dataset_fields(fields)
        )
        is None
    ):
        raise Conflict(f"dataset {slug!r} exists")
    record = get_dataset(conn, slug)
    audit.record(conn, actor=actor, action="dataset.add", target=f"dataset:{slug}", after=record)
    return record


def dataset_fields(record: DatasetRecord) -> DatasetFields:
    """Return the fields an administrator set on a dataset."""
    return DatasetFields(
        name=record.name,
        licence_class=record.licence_class,
        licence_id=record.licence_id,
        licence_name=record.licence_name,
        licence_url=record.licence_url,
        attribution=record.attribution,
        privacy=record.privacy,
    )


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(DatasetFields))
METADATA_NAMES = frozenset(datasets.METADATA_COLUMNS)
GOVERNANCE_NAMES = frozenset(datasets.GOVERNANCE_COLUMNS)
# Ten years: a longer retention is a typo, and for ever is None.
MAX_RETENTION_DAYS = 3653
MAX_KEYWORDS = 50
MAX_KEYWORD_LENGTH = 100
# dcat-ap.de licences that say "not open": an open dataset cannot carry them.
_CLOSED_LICENCES = frozenset(
    vocabularies.LICENCES + name for name in ("other-closed", "other-commercial")
)


def _optional_text(what: str, value: str | None) -> str | None:
    return check_text(what, value) if value is not None and value.strip() else None


def check_metadata(metadata: DatasetMetadata, licence_class: LicenceClass) -> DatasetMetadata:
    """Return catalogue metadata cleaned up; BadRequest for a value no portal would take."""
    keywords = tuple(dict.fromkeys(check_text("keyword", k) for k in metadata.keywords))
    if len(keywords) > MAX_KEYWORDS or any(len(k) > MAX_KEYWORD_LENGTH for k in keywords):
        raise BadRequest(
            f"at most {MAX_KEYWORDS} keywords of at most {MAX_KEYWORD_LENGTH} characters each"
        )
    themes = tuple(dict.fromkeys(t.strip().upper() for t in metadata.themes))
    unknown = sorted(set(themes) - vocabularies.THEMES)
    if unknown:
        raise BadRequest(
            f"theme {', '.join(unknown)} is not an EU data theme; the themes are "
            f"{', '.join(sorted(vocabularies.THEMES))}"
        )
    email = _optional_text("contact e-mail", metadata.contact_email)
    if email is not None and not vocabularies.is_email(email):
        raise BadRequest(f"contact e-mail {email!r} is not an e-mail address")
    licence = _optional_text("licence IRI", metadata.licence_uri)
    if licence is not None and not vocabularies.is_licence_uri(licence):
        raise BadRequest(
            f"licence IRI {licence!r} is not in the dcat-ap.de licence list "
            f"({vocabularies.LICENCES}…, e.g. {vocabularies.LICENCES}dl-by-de/2.0)"
        )
    if licence in _CLOSED_LICENCES and licence_class is LicenceClass.OPEN:
        raise BadRequest(f"an open dataset cannot carry the licence {licence}")
    contributor = _optional_text("contributor id", metadata.contributor_id)
    if contributor is not None and not vocabularies.is_contributor_id(contributor):
        raise BadRequest(
            f"contributor id {contributor!r} is not an IRI of the dcat-ap.de contributor "
            f"list ({vocabularies.CONTRIBUTORS}…)"
        )
    return DatasetMetadata(
        title_en=_optional_text("English title", metadata.title_en),
        description_de=_optional_text("German description", metadata.description_de),
        description_en=_optional_text("English description", metadata.description_en),
        keywords=keywords,
        themes=themes,
        contact_name=_optional_text("contact name", metadata.contact_name),
        contact_email=email,
        licence_uri=licence,
        contributor_id=contributor,
        catalogue_listed=metadata.catalogue_listed,
        public_summaries=metadata.public_summaries,
    )


def check_governance(governance: DatasetGovernance) -> DatasetGovernance:
    """Return retention and legal basis cleaned up; BadRequest for a retention out of range."""
    for name in ("uplink_retention_days", "reading_retention_days"):
        days = getattr(governance, name)
        if days is not None and not 1 <= days <= MAX_RETENTION_DAYS:
            raise BadRequest(
                f"{name} {days} is not within 1..{MAX_RETENTION_DAYS} days; "
                "none keeps raw data for ever"
            )
    return dataclasses.replace(
        governance, legal_basis=_optional_text("legal basis", governance.legal_basis)
    )


def update_dataset(
    conn: psycopg.Connection,
    *,
    slug: str,
    changes: Mapping[str, Any],
    now: datetime,
    actor: str,
) -> tuple[DatasetRecord, bool]:
    """Change some of a dataset's fields and catalogue metadata; return it and whether
    anything changed.

    A dataset becomes open only when it charges nothing from now on: open data is free.
    """
    record = get_dataset(conn, slug)
    unknown = set(changes) - _FIELD_NAMES - METADATA_NAMES - GOVERNANCE_NAMES
    if unknown:
        raise BadRequest(f"a dataset has no field {', '.join(sorted(unknown))}")
    fields = _check_dataset_fields(
        dataclasses.replace(
            dataset_fields(record), **{k: v for k, v in changes.items() if k in _FIELD_NAMES}
        )
    )
    metadata = check_metadata(
        dataclasses.replace(
            record.metadata, **{k: v for k, v in changes.items() if k in METADATA_NAMES}
        ),
        LicenceClass(fields.licence_class),
    )
    if (
        fields.licence_class == LicenceClass.OPEN
        and record.licence_class != LicenceClass.OPEN
        and tariffs.has_price_from(conn, dataset_id=record.id, at=now)
    ):
        raise BadRequest(
            f"dataset {slug!r} charges for use; open data is free, so first add tariff "
            "versions with cents_per_million 0 for every priced purpose"
        )
    governance = check_governance(
        dataclasses.replace(
            record.governance, **{k: v for k, v in changes.items() if k in GOVERNANCE_NAMES}
        )
    )
    changed = datasets.update_dataset(conn, dataset_id=record.id, fields=fields)
    changed |= datasets.update_metadata(conn, dataset_id=record.id, metadata=metadata)
    changed |= datasets.update_governance(conn, dataset_id=record.id, governance=governance)
    after = get_dataset(conn, slug)
    if changed:
        audit.record(
            conn,
            actor=actor,
            action="dataset.update",
            target=f"dataset:{slug}",
            before=record,
            after=after,
        )
    return after, changed


# Consumers --------------------------------------------------------------------------------


def get_consumer(conn: psycopg.Connection, slug: str) -> ConsumerRecord:
    """Return a consumer; NotFound if there is none."""
    record = consumers.get_consumer(conn, slug=slug)
    if record is None:
        raise NotFound(f"no consumer {slug!r}")
    return record


def _purpose(value: str) -> str:
    try:
        return Purpose(value).value
    except ValueError:
        purposes = ", ".join(p.value for p in Purpose)
        raise BadRequest(f"purpose {value!r} is not one of {purposes}") from None


def add_consumer(
    conn: psycopg.Connection,
    *,
    slug: str,
    name: str,
    purpose: str,
    supplier: str | None = None,
    monthly_quota: int | None = None,
    requests_per_s: int | None = None,
    actor: str,
) -> ConsumerRecord:
    """Add a consumer; `supplier` is the supplier it acts for (it sees its statements)."""
    check_slug("consumer", slug)
    check_consumer_limits(monthly_quota=monthly_quota, requests_per_s=requests_per_s)
    fields = ConsumerFields(
        name=check_text("name", name),
        purpose=_purpose(purpose),
        supplier_id=supplier_id(conn, supplier) if supplier is not None else None,
        monthly_quota=monthly_quota,
        requests_per_s=requests_per_s,
    )
    if consumers.insert_consumer(conn, slug=slug, fields=fields) is None:
        raise Conflict(f"consumer {slug!r} exists")
    record = get_consumer(conn, slug)
    audit.record(conn, actor=actor, action="consumer.add", target=f"consumer:{slug}", after=record)
    return record


CONSUMER_CHANGES = frozenset({"name", "purpose", "supplier", "monthly_quota", "requests_per_s"})


def update_consumer(
    conn: psycopg.Connection,
    *,
    slug: str,
    changes: Mapping[str, Any],
    now: datetime,
    actor: str,
) -> tuple[ConsumerRecord, bool]:
    """Change some of a consumer's fields (`supplier` by slug; None clears it).

    A quota set or changed holds from the month's start: the month's counter is set to
    the month's ledger (the API keeps it so anyway; this also covers usage written by a
    version that did not).
    """
    record = get_consumer(conn, slug)
    unknown = set(changes) - CONSUMER_CHANGES
    if unknown:
        raise BadRequest(f"a consumer has no field {', '.join(sorted(unknown))}")
    merged = {
        "name": record.name,
        "purpose": record.purpose,
        "supplier": record.supplier_slug,
        "monthly_quota": record.monthly_quota,
        "requests_per_s": record.requests_per_s,
        **changes,
    }
    check_consumer_limits(
        monthly_quota=merged["monthly_quota"], requests_per_s=merged["requests_per_s"]
    )
    fields = ConsumerFields(
        name=check_text("name", merged["name"]),
        purpose=_purpose(merged["purpose"]),
        supplier_id=supplier_id(conn, merged["supplier"]) if merged["supplier"] else None,
        monthly_quota=merged["monthly_quota"],
        requests_per_s=merged["requests_per_s"],
    )
    changed = consumers.update_consumer(conn, consumer_id=record.id, fields=fields)
    if fields.monthly_quota is not None and fields.monthly_quota != record.monthly_quota:
        usage.recount_quota(conn, consumer_id=record.id, at=now)
    after = get_consumer(conn, slug)
    if changed:
        audit.record(
            conn,
            actor=actor,
            action="consumer.update",
            target=f"consumer:{slug}",
            before=record,
            after=after,
        )
    return after, changed


# Keys -------------------------------------------------------------------------------------


def create_key(
    conn: psycopg.Connection,
    *,
    consumer: str,
    scopes: Collection[str],
    label: str = "",
    actor: str,
) -> tuple[KeyRecord, str]:
    """Make a key for a consumer; return it and its secret, which is stored only hashed."""
    owner = get_consumer(conn, consumer)
    new = keys.generate_key()
    record = consumers.insert_key(
        conn,
        consumer_id=owner.id,
        prefix=new.prefix,
        key_hash=new.key_hash,
        scopes=check_scopes(scopes),
        label=check_text("label", label) if label.strip() else "",
    )
    # The record holds the prefix, never the secret nor its hash.
    audit.record(
        conn, actor=actor, action="key.create", target=f"key:{record.prefix}", after=record
    )
    return record, new.secret


def list_keys(conn: psycopg.Connection, *, consumer: str | None = None) -> list[KeyRecord]:
    """List keys (prefixes, never secrets), of one consumer or all."""
    owner = get_consumer(conn, consumer).id if consumer is not None else None
    return consumers.list_keys(conn, consumer_id=owner)


def revoke_key(conn: psycopg.Connection, *, prefix: str, actor: str) -> KeyRecord:
    """Revoke a key by its prefix; revoking it again changes nothing."""
    # A whole key given by mistake is reduced to its prefix, never echoed back.
    prefix = keys.parse_prefix(prefix) or prefix
    before = consumers.get_key(conn, prefix=prefix)
    record = consumers.mark_key_revoked(conn, prefix=prefix)
    if before is None or record is None:
        raise NotFound(f"no API key with prefix {prefix[:12]!r}")
    if before.revoked_at is None:
        audit.record(
            conn,
            actor=actor,
            action="key.revoke",
            target=f"key:{prefix}",
            before=before,
            after=record,
        )
    return record


# Grants -----------------------------------------------------------------------------------


def add_grant(
    conn: psycopg.Connection, *, consumer: str, dataset: str, actor: str
) -> tuple[GrantRecord, bool]:
    """Grant a consumer a dataset; return the grant and whether it is new."""
    owner = get_consumer(conn, consumer)
    target = get_dataset(conn, dataset)
    created = consumers.insert_grant(conn, consumer_id=owner.id, dataset_id=target.id)
    grant = consumers.get_grant(conn, consumer_id=owner.id, dataset_id=target.id)
    assert grant is not None
    if created:
        audit.record(
            conn,
            actor=actor,
            action="grant.add",
            target=f"grant:{consumer}/{dataset}",
            after=grant,
        )
    return grant, created


def revoke_grant(conn: psycopg.Connection, *, consumer: str, dataset: str, actor: str) -> None:
    """Withdraw a consumer's grant on a dataset; NotFound if it had none."""
    owner = get_consumer(conn, consumer)
    target = get_dataset(conn, dataset)
    before = consumers.get_grant(conn, consumer_id=owner.id, dataset_id=target.id)
    if before is None or not consumers.delete_grant(
        conn, consumer_id=owner.id, dataset_id=target.id
    ):
        raise NotFound(f"consumer {consumer!r} has no grant on dataset {dataset!r}")
    audit.record(
        conn,
        actor=actor,
        action="grant.revoke",
        target=f"grant:{consumer}/{dataset}",
        before=before,
    )


def list_grants(
    conn: psycopg.Connection, *, consumer: str | None = None, dataset: str | None = None
) -> list[GrantRecord]:
    """List grants, optionally of one consumer or one dataset."""
    return consumers.list_grants(
        conn,
        consumer_id=get_consumer(conn, consumer).id if consumer is not None else None,
        dataset_id=get_dataset(conn, dataset).id if dataset is not None else None,
    )


# Tariffs ----------------------------------------------------------------------------------


def add_tariff(
    conn: psycopg.Connection,
    *,
    dataset: str,
    purpose: str,
    price: Price,
    now: datetime,
    valid_from: datetime | None = None,
    actor: str,
) -> TariffRecord:
    """Add the next version of a dataset's tariff for a purpose, valid from `valid_from` (now)."""
    target = get_dataset(conn, dataset)
    purpose = _purpose(purpose)
    check_price(LicenceClass(target.licence_class), price)
    latest = tariffs.get_latest_tariff(conn, dataset_id=target.id, purpose=purpose, at=now)
    last_period = periods.get_last_period(conn)
    start = valid_from if valid_from is not None else now
    version = next_tariff_version(
        latest=latest,
        valid_from=start,
        rated_until=period_bounds(last_period)[1] if last_period is not None else None,
    )
    tariffs.insert_tariff(
        conn,
        dataset_id=target.id,
        purpose=purpose,
        version=version,
        valid_from=start,
        price=price,
    )
    added = tariffs.get_latest_tariff(conn, dataset_id=target.id, purpose=purpose, at=now)
    assert added is not None and added.version == version
    audit.record(
        conn,
        actor=actor,
        action="tariff.add",
        target=f"tariff:{dataset}/{purpose}/{version}",
        after=added,
    )
    return added


def list_tariffs(
    conn: psycopg.Connection, *, at: datetime, dataset: str | None = None
) -> list[TariffRecord]:
    """List every tariff version, marking those in force at `at`."""
    dataset_id = get_dataset(conn, dataset).id if dataset is not None else None
    return tariffs.list_tariffs(conn, at=at, dataset_id=dataset_id)
