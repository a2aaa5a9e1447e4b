"""Models of the admin API and the published tariffs: `…In` bodies, `…Out` answers.

`datahub fairshare … --json` prints the same `…Out` shapes.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from pydantic import AwareDatetime, Field

from datahub import audit
from datahub.api.schemas import InModel, LicenceRefOut, OutModel, UtcTime
from datahub.domain import SLUG, LicenceClass, Purpose
from datahub.fairshare.keys import Scope
from datahub.privacy import PrivacyClass
from datahub.storage.audit import StoredEntry
from datahub.storage.consumers import ConsumerRecord, GrantRecord, KeyRecord
from datahub.storage.datasets import DatasetRecord
from datahub.storage.suppliers import SupplierRecord
from datahub.storage.tariffs import TariffRecord

SlugField = Annotated[str, Field(pattern=SLUG.pattern, examples=["edg"])]
Text = Annotated[str, Field(min_length=1, max_length=500)]


# Query strings ----------------------------------------------------------------------------


class AdminDatasetQuery(InModel):
    supplier: SlugField | None = Field(default=None, description="only this supplier's")


class GrantQuery(InModel):
    consumer: SlugField | None = Field(default=None, description="only this consumer's")
    dataset: SlugField | None = Field(default=None, description="only on this dataset")


class TariffQuery(InModel):
    dataset: SlugField | None = Field(default=None, description="only this dataset's")
    current: bool = Field(default=False, description="only the versions in force now")


# Bodies -----------------------------------------------------------------------------------


class SupplierIn(InModel):
    slug: SlugField
    name: Text
    kind: Text = Field(default="other", examples=["waste_company"])


class LicenceIn(InModel):
    """A licence with the URL of its terms, or `none` / `no licence given` without one."""

    id: Text = Field(examples=["dl-de/by-2-0", "CC-BY-4.0", "none"])
    name: Text = Field(examples=["Datenlizenz Deutschland Namensnennung 2.0", "no licence given"])
    url: str | None = Field(
        default=None,
        description="required unless `id` is `none`; e.g. the licence's dcat-ap.de IRI",
        examples=[
            "https://www.govdata.de/dl-de/by-2-0",
            "http://dcat-ap.de/def/licenses/other-closed",
        ],
    )


class OpenDataIn(InModel):
    """A dataset's open-data catalogue metadata; in a PATCH only the fields given change.

    Null clears a text (it is then derived: the English title from the name, the contact
    and contributor from the settings, the licence IRI from the licence id and class).
    """

    title_en: Text | None = None
    description_de: str | None = Field(default=None, max_length=5000)
    description_en: str | None = Field(default=None, max_length=5000)
    keywords: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default=[], max_length=50
    )
    themes: list[str] = Field(
        default=[], max_length=13, description="EU data themes, e.g. ENVI, TRAN, REGI"
    )
    contact_name: Text | None = None
    contact_email: Text | None = None
    licence_uri: Text | None = Field(
        default=None,
        description="from the dcat-ap.de licence list",
        examples=["http://dcat-ap.de/def/licenses/dl-by-de/2.0"],
    )
    contributor_id: Text | None = Field(
        default=None,
        description="from the dcat-ap.de contributor list",
        examples=["http://dcat-ap.de/def/contributors/openNRW"],
    )
    catalogue_listed: bool = Field(
        default=False, description="the supplier lets a restricted or commercial dataset be listed"
    )
    public_summaries: bool = Field(
        default=False, description="the supplier lets open summaries of it be published"
    )


class DatasetIn(InModel):
    slug: SlugField
    supplier: SlugField
    name: Text
    licence_class: LicenceClass
    licence: LicenceIn
    attribution: Text = Field(description="the text to show wherever the data is shown")
    privacy: PrivacyClass = Field(
        default=PrivacyClass.PUBLIC_INFRASTRUCTURE,
        description="what callers without a grant see of its devices (docs/privacy.md)",
    )
    open_data: OpenDataIn | None = None


RetentionDays = Annotated[
    int | None,
    Field(
        ge=1,
        le=3653,
        description="days the raw data is kept, then deleted (the hourly and daily rollups "
        "stay); null: for ever (docs/privacy.md)",
    ),
]


class DatasetPatch(InModel):
    """The fields to change; `licence` replaces id, name and URL together."""

    name: Text | None = None
    licence_class: LicenceClass | None = None
    licence: LicenceIn | None = None
    attribution: Text | None = None
    privacy: PrivacyClass | None = None
    open_data: OpenDataIn | None = None
    uplink_retention_days: RetentionDays = None
    reading_retention_days: RetentionDays = None
    legal_basis: str | None = Field(
        default=None,
        max_length=2000,
        description="the legal basis of processing the dataset, e.g. "
        "'Art. 6(1)(e) GDPR: public task, waste collection'; null clears it",
    )


class ConsumerIn(InModel):
    slug: SlugField
    name: Text
    purpose: Purpose
    supplier: SlugField | None = Field(
        default=None, description="the supplier it acts for: it sees that supplier's statements"
    )
    monthly_quota: int | None = Field(
        default=None, ge=0, description="observations per calendar month; null: no quota"
    )
    requests_per_s: int | None = Field(
        default=None, ge=1, description="null: the configured default"
    )


class ConsumerPatch(InModel):
    """The fields to change; null clears `supplier`, `monthly_quota` and `requests_per_s`."""

    name: Text | None = None
    purpose: Purpose | None = None
    supplier: SlugField | None = None
    monthly_quota: int | None = Field(default=None, ge=0)
    requests_per_s: int | None = Field(default=None, ge=1)


class KeyIn(InModel):
    scopes: list[Scope] = Field(default=[Scope.READ], min_length=1)
    label: str = Field(default="", max_length=200, description="what the key is for")


class TariffIn(InModel):
    dataset: SlugField
    purpose: Purpose
    cents_per_million: int = Field(ge=0, description="price: cents per million observations")
    shadow_cents_per_million: int = Field(
        ge=0, description="what use is worth when it pays nothing, per million observations"
    )
    platform_fee_basis_points: int = Field(ge=0, le=10_000, description="1 % = 100")
    valid_from: AwareDatetime | None = Field(
        default=None, description="RFC 3339 with offset; default: now"
    )


# Answers ----------------------------------------------------------------------------------


class AdminSupplierOut(OutModel):
    slug: str
    name: str
    kind: str
    datasets: list[str] = Field(description="slugs of its datasets")
    device_count: int
    created_at: UtcTime


class AdminSupplierListOut(OutModel):
    items: list[AdminSupplierOut]


class OpenDataOut(OutModel):
    title_en: str | None
    description_de: str | None
    description_en: str | None
    keywords: list[str]
    themes: list[str]
    contact_name: str | None
    contact_email: str | None
    licence_uri: str | None
    contributor_id: str | None
    catalogue_listed: bool
    public_summaries: bool


class AdminDatasetOut(OutModel):
    slug: str
    supplier: str = Field(description="the supplier's slug")
    name: str
    licence_class: LicenceClass
    licence: LicenceRefOut
    attribution: str
    privacy: PrivacyClass = Field(description="its devices' class unless they set their own")
    device_count: int
    created_at: UtcTime
    updated_at: UtcTime
    open_data: OpenDataOut
    uplink_retention_days: int | None = Field(description="null: kept for ever")
    reading_retention_days: int | None = Field(description="null: kept for ever")
    legal_basis: str | None


class AdminDatasetListOut(OutModel):
    items: list[AdminDatasetOut]


class ConsumerOut(OutModel):
    slug: str
    name: str
    purpose: Purpose
    supplier: str | None = Field(description="slug of the supplier it acts for, if any")
    monthly_quota: int | None
    requests_per_s: int | None
    active_keys: int
    grants: list[str] = Field(description="slugs of the datasets granted to it")
    created_at: UtcTime
    updated_at: UtcTime


class ConsumerListOut(OutModel):
    items: list[ConsumerOut]


class KeyOut(OutModel):
    prefix: str = Field(description="identifies the key; the key itself is never shown again")
    consumer: str
    scopes: list[str]
    label: str
    created_at: UtcTime
    revoked_at: UtcTime | None


class KeyListOut(OutModel):
    items: list[KeyOut]


class NewKeyOut(KeyOut):
    key: str = Field(description="the whole key, shown this once; only its hash is kept")


class GrantOut(OutModel):
    consumer: str
    dataset: str
    licence_class: LicenceClass
    granted_at: UtcTime


class GrantListOut(OutModel):
    items: list[GrantOut]


class TariffOut(OutModel):
    dataset: str
    supplier: str
    licence_class: LicenceClass
    purpose: Purpose
    version: int
    valid_from: UtcTime
    cents_per_million: int = Field(description="price: cents per million observations")
    shadow_cents_per_million: int = Field(description="what free use is worth, same unit")
    platform_fee_basis_points: int = Field(description="the platform's share; 1 % = 100")
    current: bool = Field(description="whether this version is in force now")


class TariffListOut(OutModel):
    items: list[TariffOut]


# From storage records ---------------------------------------------------------------------


def supplier_out(record: SupplierRecord) -> AdminSupplierOut:
    return AdminSupplierOut(
        slug=record.slug,
        name=record.name,
        kind=record.kind,
        datasets=list(record.datasets),
        device_count=record.device_count,
        created_at=record.created_at,
    )


def dataset_out(record: DatasetRecord) -> AdminDatasetOut:
    return AdminDatasetOut(
        slug=record.slug,
        supplier=record.supplier_slug,
        name=record.name,
        licence_class=LicenceClass(record.licence_class),
        licence=LicenceRefOut(
            id=record.licence_id, name=record.licence_name, url=record.licence_url
        ),
        attribution=record.attribution,
        privacy=PrivacyClass(record.privacy),
        device_count=record.device_count,
        created_at=record.created_at,
        updated_at=record.updated_at,
        open_data=OpenDataOut(
            **{
                **dataclasses.asdict(record.metadata),
                "keywords": list(record.metadata.keywords),
                "themes": list(record.metadata.themes),
            }
        ),
        **dataclasses.asdict(record.governance),
    )


def consumer_out(record: ConsumerRecord) -> ConsumerOut:
    return ConsumerOut(
        slug=record.slug,
        name=record.name,
        purpose=Purpose(record.purpose),
        supplier=record.supplier_slug,
        monthly_quota=record.monthly_quota,
        requests_per_s=record.requests_per_s,
        active_keys=record.active_keys,
        grants=list(record.grants),
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def key_out(record: KeyRecord) -> KeyOut:
    return KeyOut(
        prefix=record.prefix,
        consumer=record.consumer_slug,
        scopes=list(record.scopes),
        label=record.label,
        created_at=record.created_at,
        revoked_at=record.revoked_at,
    )


def new_key_out(record: KeyRecord, secret: str) -> NewKeyOut:
    return NewKeyOut(**key_out(record).model_dump(), key=secret)


def grant_out(record: GrantRecord) -> GrantOut:
    return GrantOut(
        consumer=record.consumer_slug,
        dataset=record.dataset_slug,
        licence_class=LicenceClass(record.licence_class),
        granted_at=record.granted_at,
    )


def tariff_out(record: TariffRecord) -> TariffOut:
    return TariffOut(
        dataset=record.dataset_slug,
        supplier=record.supplier_slug,
        licence_class=LicenceClass(record.licence_class),
        purpose=Purpose(record.purpose),
        version=record.version,
        valid_from=record.valid_from,
        cents_per_million=record.price.cents_per_million,
        shadow_cents_per_million=record.price.shadow_cents_per_million,
        platform_fee_basis_points=record.price.platform_fee_basis_points,
        current=record.current,
    )


# Audit log ------------------------------------------------------------------------------

MAX_AUDIT_ENTRIES = 1000


class AuditQuery(InModel):
    after: int = Field(default=0, ge=0, description="entries after this seq (the next page)")
    limit: int = Field(default=100, ge=1, le=MAX_AUDIT_ENTRIES)
    action: str | None = Field(
        default=None,
        max_length=100,
        description="an action (`dataset.update`) or all of a kind (`dataset.`)",
    )
    target: str | None = Field(default=None, max_length=300, examples=["supplier:edg"])
    actor: str | None = Field(default=None, max_length=300, examples=["cli:alice"])


class AuditEntryOut(OutModel):
    """One entry: `at` is exactly as hashed; `hash` = SHA-256(`prev_hash` ‖ canonical
    JSON of seq, at, actor, action, target, before, after)."""

    seq: int
    at: str = Field(description="UTC, microseconds, `Z`: YYYY-MM-DDTHH:MM:SS.ffffffZ")
    actor: str = Field(description="`key:<prefix>` or `cli:<OS user>[ as <name>]`")
    action: str
    target: str
    before: Any = Field(description="the record before the change; null for an addition")
    after: Any = Field(description="the record after the change; null for a removal")
    prev_hash: str = Field(description="hex; 64 zeros for entry 1")
    hash: str = Field(description="hex")


class AuditListOut(OutModel):
    items: list[AuditEntryOut]
    next_after: int | None = Field(description="pass as `after` for the next page; null: none")


class AuditVerdictOut(OutModel):
    """A walk along the whole chain as stored now."""

    intact: bool
    entries: int = Field(description="entries whose link held")
    head_seq: int = Field(description="the last entry whose link held")
    head_hash: str = Field(description="its hash, hex: keep it to check the log later")
    broken_at: int | None = Field(description="the seq of the first link that does not hold")
    reason: str | None


def entry_out(entry: StoredEntry) -> AuditEntryOut:
    """Render a stored entry as the API shows it."""
    return AuditEntryOut(
        seq=entry.seq,
        at=audit.timestamp(entry.at),
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        before=entry.before,
        after=entry.after,
        prev_hash=entry.prev_hash.hex(),
        hash=entry.hash.hex(),
    )
