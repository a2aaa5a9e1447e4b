"""The dataset table as administrators see it, and which dataset each device is in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg


@dataclass(frozen=True, slots=True)
class DatasetMetadata:
    """What the open-data catalogue says of a dataset beyond its name and licence.

    None: derived (the licence IRI from the licence, the contributor and the contact from
    the settings, the English title from the German one). `catalogue_listed` and
    `public_summaries` are the supplier's permissions for a dataset that is not open.
    """

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


METADATA_COLUMNS = (
    "title_en",
    "description_de",
    "description_en",
    "keywords",
    "themes",
    "contact_name",
    "contact_email",
    "licence_uri",
    "contributor_id",
    "catalogue_listed",
    "public_summaries",
)


@dataclass(frozen=True, slots=True)
class DatasetGovernance:
    """How long a dataset's raw data is kept, and the legal basis of processing it.

    None keeps raw uplinks (readings) for ever; the rollups are kept regardless.
    """

    uplink_retention_days: int | None = None
    reading_retention_days: int | None = None
    legal_basis: str | None = None  # e.g. "Art. 6(1)(e) GDPR: public task, waste collection"


GOVERNANCE_COLUMNS = ("uplink_retention_days", "reading_retention_days", "legal_basis")


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    """A dataset with its supplier and how many devices it holds."""

    id: int
    slug: str
    supplier_id: int
    supplier_slug: str
    name: str
    licence_class: str
    licence_id: str
    licence_name: str
    licence_url: str | None
    attribution: str
    privacy: str  # datahub.privacy.PrivacyClass
    device_count: int
    created_at: datetime
    updated_at: datetime
    metadata: DatasetMetadata
    governance: DatasetGovernance = DatasetGovernance()


@dataclass(frozen=True, slots=True)
class DatasetFields:
    """What an administrator sets on a dataset (everything but its slug and supplier)."""

    name: str
    licence_class: str
    licence_id: str
    licence_name: str
    licence_url: str | None
    attribution: str
    privacy: str = "public_infrastructure"  # datahub.privacy.PrivacyClass


_SELECT = f"""
    SELECT ds.id, ds.slug, ds.supplier_id, s.slug, ds.name, ds.licence_class, ds.licence_id,
           ds.licence_name, ds.licence_url, ds.attribution, ds.privacy,
           (SELECT count(*) FROM device d WHERE d.dataset_id = ds.id),
           ds.created_at, ds.updated_at, {", ".join(f"ds.{c}" for c in METADATA_COLUMNS)},
           {", ".join(f"ds.{c}" for c in GOVERNANCE_COLUMNS)}
    FROM dataset ds JOIN supplier s ON s.id = ds.supplier_id
"""
_RECORD_COLUMNS = 14


def _record(row: tuple[Any, ...]) -> DatasetRecord:
    governed = _RECORD_COLUMNS + len(METADATA_COLUMNS)
    metadata = dict(zip(METADATA_COLUMNS, row[_RECORD_COLUMNS:governed], strict=True))
    metadata["keywords"] = tuple(metadata["keywords"])
    metadata["themes"] = tuple(metadata["themes"])
    governance = DatasetGovernance(*row[governed:])
    return DatasetRecord(*row[:_RECORD_COLUMNS], DatasetMetadata(**metadata), governance)  # type: ignore[call-arg]


def get_dataset(conn: psycopg.Connection, *, slug: str) -> DatasetRecord | None:
    """Return one dataset by slug, or None."""
    row = conn.execute(f"{_SELECT} WHERE ds.slug = %s", (slug,)).fetchone()
    return _record(row) if row is not None else None


def list_datasets(
    conn: psycopg.Connection, *, supplier_id: int | None = None
) -> list[DatasetRecord]:
    """List datasets by slug, optionally of one supplier."""
    rows = conn.execute(
        f"{_SELECT} WHERE %(supplier_id)s::int IS NULL OR ds.supplier_id = %(supplier_id)s "
        "ORDER BY ds.slug",
        {"supplier_id": supplier_id},
    ).fetchall()
    return [_record(row) for row in rows]


def insert_dataset(
    conn: psycopg.Connection, *, slug: str, supplier_id: int, fields: DatasetFields
) -> int | None:
    """Insert a dataset; return its id, or None if the slug is taken."""
    row = conn.execute(
        """
        INSERT INTO dataset (slug, supplier_id, name, licence_class, licence_id, licence_name,
                             licence_url, attribution, privacy)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (slug) DO NOTHING
        RETURNING id
        """,
        (
            slug,
            supplier_id,
            fields.name,
            fields.licence_class,
            fields.licence_id,
            fields.licence_name,
            fields.licence_url,
            fields.attribution,
            fields.privacy,
        ),
    ).fetchone()
    return row[0] if row is not None else None


def update_dataset(conn: psycopg.Connection, *, dataset_id: int, fields: DatasetFields) -> bool:
    """Set a dataset's fields; return whether anything changed (updated_at moves only then)."""
    row = conn.execute(
        """
        UPDATE dataset SET name = %(name)s, licence_class = %(licence_class)s,
            licence_id = %(licence_id)s, licence_name = %(licence_name)s,
            licence_url = %(licence_url)s, attribution = %(attribution)s,
            privacy = %(privacy)s, updated_at = now()
        WHERE id = %(id)s
          AND (name, licence_class, licence_id, licence_name, licence_url, attribution, privacy)
              IS DISTINCT FROM (%(name)s, %(licence_class)s, %(licence_id)s, %(licence_name)s,
                                %(licence_url)s::text, %(attribution)s, %(privacy)s)
        RETURNING id
        """,
        {
            "id": dataset_id,
            "name": fields.name,
            "licence_class": fields.licence_class,
            "licence_id": fields.licence_id,
            "licence_name": fields.licence_name,
            "licence_url": fields.licence_url,
            "attribution": fields.attribution,
            "privacy": fields.privacy,
        },
    ).fetchone()
    return row is not None


def update_metadata(
    conn: psycopg.Connection, *, dataset_id: int, metadata: DatasetMetadata
) -> bool:
    """Set a dataset's catalogue metadata; return whether anything changed."""
    values = {c: getattr(metadata, c) for c in METADATA_COLUMNS}
    values["keywords"] = list(metadata.keywords)
    values["themes"] = list(metadata.themes)
    assignments = ", ".join(f"{c} = %({c})s" for c in METADATA_COLUMNS)
    columns = ", ".join(METADATA_COLUMNS)
    # Typed placeholders: IS DISTINCT FROM compares a row whose NULLs have no type otherwise.
    typed = ", ".join(f"%({c})s::{_TYPES.get(c, 'text')}" for c in METADATA_COLUMNS)
    row = conn.execute(
        f"""
        UPDATE dataset SET {assignments}, updated_at = now()
        WHERE id = %(id)s AND ({columns}) IS DISTINCT FROM ({typed})
        RETURNING id
        """,
        {"id": dataset_id, **values},
    ).fetchone()
    return row is not None


def update_governance(
    conn: psycopg.Connection, *, dataset_id: int, governance: DatasetGovernance
) -> bool:
    """Set a dataset's retention and legal basis; return whether anything changed."""
    row = conn.execute(
        """
        UPDATE dataset SET uplink_retention_days = %(uplink)s,
            reading_retention_days = %(reading)s, legal_basis = %(basis)s, updated_at = now()
        WHERE id = %(id)s
          AND (uplink_retention_days, reading_retention_days, legal_basis)
              IS DISTINCT FROM (%(uplink)s::int, %(reading)s::int, %(basis)s::text)
        RETURNING id
        """,
        {
            "id": dataset_id,
            "uplink": governance.uplink_retention_days,
            "reading": governance.reading_retention_days,
            "basis": governance.legal_basis,
        },
    ).fetchone()
    return row is not None


_TYPES = {
    "keywords": "text[]",
    "themes": "text[]",
    "catalogue_listed": "boolean",
    "public_summaries": "boolean",
}


def assign_devices(
    conn: psycopg.Connection,
    *,
    dataset_id: int,
    supplier_id: int,
    profiles: Sequence[str] | None = None,
    cities: Sequence[str] | None = None,
) -> int:
    """Move the supplier's devices (of these profiles and cities; None: any) into a dataset.

    Return how many moved; devices already in it are left alone.
    """
    cur = conn.execute(
        """
        UPDATE device SET dataset_id = %(dataset_id)s, updated_at = now()
        WHERE supplier_id = %(supplier_id)s
          AND dataset_id <> %(dataset_id)s
          AND (%(profiles)s::text[] IS NULL OR profile = ANY(%(profiles)s::text[]))
          AND (%(cities)s::text[] IS NULL OR city = ANY(%(cities)s::text[]))
        """,
        {
            "dataset_id": dataset_id,
            "supplier_id": supplier_id,
            "profiles": list(profiles) if profiles is not None else None,
            "cities": list(cities) if cities is not None else None,
        },
    )
    return cur.rowcount
