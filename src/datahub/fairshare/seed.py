"""A fair-share set-up from a YAML file: suppliers, datasets, tariffs, consumers, grants, keys.

The file (deploy/fairshare-demo.yaml is the demo's) declares what should exist; applying
it adds what is missing and updates what differs, through the same rules as the CLI and
the admin API, so a second run changes nothing. It only adds: a grant, dataset or key
left out of the file is not removed. Keys are made once per consumer and label; their
secrets are shown only when made.

A dataset's `devices` rule moves its supplier's devices (of some profiles and cities)
into it; devices a rule does not match stay where the registry put them, by default in
their supplier's own restricted dataset. A later `datahub devices import` of a registry
without a `dataset` column puts devices back there: apply the seed again after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

import psycopg
import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from datahub import audit
from datahub.domain import SLUG, City, LicenceClass, Purpose
from datahub.errors import DatahubError
from datahub.fairshare import admin
from datahub.fairshare.keys import Scope
from datahub.privacy import PrivacyClass
from datahub.storage import consumers, datasets, suppliers, tariffs
from datahub.storage.datasets import DatasetFields
from datahub.storage.tariffs import Price

Slug = Field(pattern=SLUG.pattern)


class SeedFileError(DatahubError):
    """A seed file that cannot be applied; the message says where."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SupplierSpec(_Model):
    slug: str = Slug
    name: str = Field(min_length=1)
    kind: str = "other"


class LicenceSpec(_Model):
    licence_class: LicenceClass = Field(alias="class")
    id: str = Field(min_length=1, description="e.g. dl-de/by-2-0, CC-BY-4.0")
    name: str = Field(min_length=1)
    url: str | None = None


class DeviceRule(_Model):
    """Which of the supplier's devices the dataset holds; an omitted list matches any."""

    profiles: tuple[str, ...] | None = Field(default=None, min_length=1)
    cities: tuple[City, ...] | None = Field(default=None, min_length=1)

    def overlaps(self, other: DeviceRule) -> bool:
        def meet(a: tuple[Any, ...] | None, b: tuple[Any, ...] | None) -> bool:
            return a is None or b is None or bool(set(a) & set(b))

        return meet(self.profiles, other.profiles) and meet(self.cities, other.cities)


class TariffSpec(_Model):
    purpose: Purpose
    cents_per_million: int = Field(ge=0)
    shadow_cents_per_million: int = Field(ge=0)
    platform_fee_basis_points: int = Field(ge=0, le=admin.MAX_BASIS_POINTS)
    valid_from: AwareDatetime | None = Field(
        default=None,
        description="when a new version starts, if after the latest one; default: when applied",
    )

    @property
    def price(self) -> Price:
        return Price(
            self.cents_per_million, self.shadow_cents_per_million, self.platform_fee_basis_points
        )


class OpenDataSpec(_Model):
    """A dataset's catalogue metadata (datahub.storage.datasets.DatasetMetadata)."""

    title_en: str | None = None
    description_de: str | None = None
    description_en: str | None = None
    keywords: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    contact_name: str | None = None
    contact_email: str | None = None
    licence_uri: str | None = None
    contributor_id: str | None = None
    catalogue_listed: bool = False
    public_summaries: bool = False


class DatasetSpec(_Model):
    slug: str = Slug
    supplier: str = Slug
    name: str = Field(min_length=1)
    licence: LicenceSpec
    attribution: str = Field(min_length=1)
    privacy: PrivacyClass = PrivacyClass.PUBLIC_INFRASTRUCTURE
    devices: DeviceRule | None = Field(default=None, description="omitted: moves no devices")
    tariffs: tuple[TariffSpec, ...] = ()
    open_data: OpenDataSpec | None = Field(
        default=None, description="catalogue metadata; omitted: left as it is"
    )

    @model_validator(mode="after")
    def _one_tariff_per_purpose(self) -> DatasetSpec:
        _unique(f"dataset {self.slug}: tariff purpose", [t.purpose for t in self.tariffs])
        return self

    @property
    def fields(self) -> DatasetFields:
        return DatasetFields(
            name=self.name,
            licence_class=self.licence.licence_class.value,
            licence_id=self.licence.id,
            licence_name=self.licence.name,
            licence_url=self.licence.url,
            attribution=self.attribution,
            privacy=self.privacy.value,
        )


class KeySpec(_Model):
    label: str = Field(min_length=1)
    scopes: tuple[Scope, ...] = Field(default=(Scope.READ,), min_length=1)


class ConsumerSpec(_Model):
    slug: str = Slug
    name: str = Field(min_length=1)
    purpose: Purpose
    supplier: str | None = Field(default=None, pattern=SLUG.pattern)
    monthly_quota: int | None = Field(default=None, ge=0)
    requests_per_s: int | None = Field(default=None, ge=1)
    grants: tuple[str, ...] = ()
    keys: tuple[KeySpec, ...] = ()

    @model_validator(mode="after")
    def _unique_lists(self) -> ConsumerSpec:
        _unique(f"consumer {self.slug}: grant", list(self.grants))
        _unique(f"consumer {self.slug}: key label", [k.label for k in self.keys])
        return self


class SeedFile(_Model):
    suppliers: tuple[SupplierSpec, ...] = ()
    datasets: tuple[DatasetSpec, ...] = ()
    consumers: tuple[ConsumerSpec, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> SeedFile:
        _unique("supplier", [s.slug for s in self.suppliers])
        _unique("dataset", [d.slug for d in self.datasets])
        _unique("consumer", [c.slug for c in self.consumers])
        # Overlapping rules would move devices back and forth on every run.
        ruled = [d for d in self.datasets if d.devices is not None]
        for i, a in enumerate(ruled):
            for b in ruled[i + 1 :]:
                if (
                    a.supplier == b.supplier
                    and a.devices
                    and b.devices
                    and a.devices.overlaps(b.devices)
                ):
                    raise ValueError(
                        f"datasets {a.slug} and {b.slug}: their device rules both "
                        f"match devices of {a.supplier}"
                    )
        return self

    def profiles(self) -> set[str]:
        """Return every profile the device rules name."""
        return {p for d in self.datasets if d.devices for p in d.devices.profiles or ()}


def _unique(what: str, values: list[Any]) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value} listed twice")
        seen.add(value)


def load_seed(path: Path) -> SeedFile:
    """Read and validate a seed file; every error names the file and the field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SeedFileError(f"{path}: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SeedFileError(f"{path}: expected a mapping of suppliers, datasets and consumers")
    # Top-level `x-…` keys hold YAML anchors to reuse (licences, tariffs), as in compose files.
    data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
    try:
        seed = SeedFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()
        )
        raise SeedFileError(f"{path}: {problems}") from None
    return seed


# Applying ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeededKey:
    """A key the seed declares: `secret` only when this run made it."""

    consumer: str
    purpose: str
    label: str
    scopes: tuple[str, ...]
    prefix: str
    secret: str | None


class SeededKeyJson(TypedDict):
    consumer: str
    purpose: str
    label: str
    scopes: list[str]
    prefix: str
    key: str | None  # the whole key, when this run made it


class SeedReportJson(TypedDict):
    summary: str
    changes: list[str]
    warnings: list[str]
    keys: list[SeededKeyJson]


@dataclass(slots=True)
class SeedReport:
    """What applying a seed did: one line per change, warnings, and its keys."""

    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    keys: list[SeededKey] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def note(self, what: str, change: str, n: int = 1) -> None:
        """Record one change; `what` counts it in the summary (`n` of them)."""
        self.changes.append(change)
        self.counts[what] = self.counts.get(what, 0) + n

    def summary(self) -> str:
        """Say in one line what changed."""
        return ", ".join(f"{n} {what}" for what, n in self.counts.items()) or "nothing changed"

    def as_json(self) -> SeedReportJson:
        return {
            "summary": self.summary(),
            "changes": self.changes,
            "warnings": self.warnings,
            "keys": [
                {
                    "consumer": k.consumer,
                    "purpose": k.purpose,
                    "label": k.label,
                    "scopes": list(k.scopes),
                    "prefix": k.prefix,
                    "key": k.secret,
                }
                for k in self.keys
            ],
        }


def apply_seed(
    conn: psycopg.Connection, seed: SeedFile, *, now: datetime, actor: str
) -> SeedReport:
    """Make the database hold what the seed declares; the caller commits."""
    report = SeedReport()
    for supplier in seed.suppliers:
        _apply_supplier(conn, supplier, report, actor=actor)
    for dataset in seed.datasets:
        _apply_dataset(conn, dataset, report, actor=actor, now=now)
    for consumer in seed.consumers:
        _apply_consumer(conn, consumer, report, now=now, actor=actor)
    return report


def _apply_supplier(
    conn: psycopg.Connection, spec: SupplierSpec, report: SeedReport, *, actor: str
) -> None:
    existing = suppliers.list_suppliers(conn, slug=spec.slug)
    if not existing:
        admin.add_supplier(conn, actor=actor, slug=spec.slug, name=spec.name, kind=spec.kind)
        report.note("suppliers added", f"supplier {spec.slug} added")
    elif (existing[0].name, existing[0].kind) != (spec.name, spec.kind):
        admin.update_supplier(conn, slug=spec.slug, name=spec.name, kind=spec.kind, actor=actor)
        report.note("suppliers updated", f"supplier {spec.slug} updated")


def _apply_dataset(
    conn: psycopg.Connection, spec: DatasetSpec, report: SeedReport, *, now: datetime, actor: str
) -> None:
    existing = datasets.get_dataset(conn, slug=spec.slug)
    if existing is None:
        admin.add_dataset(
            conn, actor=actor, slug=spec.slug, supplier=spec.supplier, fields=spec.fields
        )
        report.note("datasets added", f"dataset {spec.slug} added ({spec.licence.licence_class})")
        if spec.open_data is not None:
            admin.update_dataset(
                conn, actor=actor, slug=spec.slug, changes=_as_changes(spec), now=now
            )
        _apply_tariffs(conn, spec, report, actor=actor, now=now)
    else:
        if existing.supplier_slug != spec.supplier:
            raise SeedFileError(
                f"dataset {spec.slug} belongs to supplier {existing.supplier_slug}, "
                f"not {spec.supplier}; a dataset cannot change its supplier"
            )
        # Opening a dataset needs its prices at zero first; pricing one, its class first.
        opening = spec.licence.licence_class is LicenceClass.OPEN
        if opening:
            _apply_tariffs(conn, spec, report, actor=actor, now=now)
        _, changed = admin.update_dataset(
            conn, actor=actor, slug=spec.slug, changes=_as_changes(spec), now=now
        )
        if changed:
            report.note("datasets updated", f"dataset {spec.slug} updated")
        if not opening:
            _apply_tariffs(conn, spec, report, actor=actor, now=now)
    if spec.devices is not None:
        record = admin.get_dataset(conn, spec.slug)
        moved = datasets.assign_devices(
            conn,
            dataset_id=record.id,
            supplier_id=record.supplier_id,
            profiles=spec.devices.profiles,
            cities=[str(c) for c in spec.devices.cities] if spec.devices.cities else None,
        )
        if moved:
            report.note("devices moved", f"dataset {spec.slug}: {moved} devices moved in", moved)
            audit.record(
                conn,
                actor=actor,
                action="dataset.assign_devices",
                target=f"dataset:{spec.slug}",
                after={"rule": spec.devices.model_dump(mode="json"), "devices_moved": moved},
            )
        if admin.get_dataset(conn, spec.slug).device_count == 0:
            report.warnings.append(
                f"dataset {spec.slug}: its device rule matches no device of {spec.supplier}; "
                "import the registry first"
            )


def _as_changes(spec: DatasetSpec) -> dict[str, Any]:
    """The dataset's fields, and its catalogue metadata if the file gives it."""
    changes = {name: getattr(spec.fields, name) for name in DatasetFields.__dataclass_fields__}
    if spec.open_data is not None:
        changes |= spec.open_data.model_dump()
    return changes


def _apply_tariffs(
    conn: psycopg.Connection, spec: DatasetSpec, report: SeedReport, *, now: datetime, actor: str
) -> None:
    record = admin.get_dataset(conn, spec.slug)
    for tariff in spec.tariffs:
        latest = tariffs.get_latest_tariff(
            conn, dataset_id=record.id, purpose=tariff.purpose, at=now
        )
        if latest is not None and latest.price == tariff.price:
            continue
        # The file's valid_from dates the first version; a later change of price in the
        # file starts when it is applied, since versions never rewrite history.
        start = tariff.valid_from
        if latest is not None and start is not None and start <= latest.valid_from:
            start = None
        added = admin.add_tariff(
            conn,
            actor=actor,
            dataset=spec.slug,
            purpose=tariff.purpose,
            price=tariff.price,
            now=now,
            valid_from=start,
        )
        report.note(
            "tariff versions added",
            f"tariff {spec.slug}/{tariff.purpose} version {added.version} added",
        )


def _apply_consumer(
    conn: psycopg.Connection,
    spec: ConsumerSpec,
    report: SeedReport,
    *,
    now: datetime,
    actor: str,
) -> None:
    if consumers.get_consumer(conn, slug=spec.slug) is None:
        admin.add_consumer(
            conn,
            actor=actor,
            slug=spec.slug,
            name=spec.name,
            purpose=spec.purpose,
            supplier=spec.supplier,
            monthly_quota=spec.monthly_quota,
            requests_per_s=spec.requests_per_s,
        )
        report.note("consumers added", f"consumer {spec.slug} added ({spec.purpose})")
    else:
        _, changed = admin.update_consumer(
            conn,
            actor=actor,
            slug=spec.slug,
            changes={
                "name": spec.name,
                "purpose": spec.purpose.value,
                "supplier": spec.supplier,
                "monthly_quota": spec.monthly_quota,
                "requests_per_s": spec.requests_per_s,
            },
            now=now,
        )
        if changed:
            report.note("consumers updated", f"consumer {spec.slug} updated")
    for dataset in spec.grants:
        _, created = admin.add_grant(conn, actor=actor, consumer=spec.slug, dataset=dataset)
        if created:
            report.note("grants added", f"grant {spec.slug} -> {dataset} added")
    consumer = admin.get_consumer(conn, spec.slug)
    active = [k for k in consumers.list_keys(conn, consumer_id=consumer.id) if k.revoked_at is None]
    for key in spec.keys:
        held = next((k for k in active if k.label == key.label), None)
        if held is not None:
            report.keys.append(
                SeededKey(spec.slug, spec.purpose, key.label, held.scopes, held.prefix, None)
            )
            continue
        record, secret = admin.create_key(
            conn, actor=actor, consumer=spec.slug, scopes=key.scopes, label=key.label
        )
        report.note("keys made", f"key {record.prefix} of {spec.slug} made")
        report.keys.append(
            SeededKey(spec.slug, spec.purpose, key.label, record.scopes, record.prefix, secret)
        )
