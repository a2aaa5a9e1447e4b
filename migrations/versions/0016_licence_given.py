"""Every dataset has a licence URL, or says that no licence is given.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04

Before, the dataset each supplier gets for its devices was created with the placeholder
licence 'proprietary' / 'All rights reserved' and no URL, and an administrator could leave
out any dataset's URL, so a client could not tell which terms applied. From now on a
dataset has a licence URL, or the licence id `none` ("no licence given").

The upgrade changes only what it must:
- a supplier's own dataset (its slug is the supplier's) still carrying the placeholder
  and no URL never had a licence chosen for it: it becomes `none` / "no licence given";
- any other dataset without a URL keeps its licence id and name and gets, as its URL, the
  dcat-ap.de licence IRI the open-data catalogue already published for it: the catalogue
  licence an administrator set (`licence_uri`), else the IRI of its licence id
  (`dl-de/by-2-0` → …/dl-by-de/2.0), else its class's (`other-open`, `other-closed`,
  `other-commercial`). What the hub says of a dataset's licence does not change; the
  REST API now says it too.

Each dataset it changes gets an entry in the audit log, in the same transaction:
`dataset.update` by `migration:0016`, its licence id, name and URL before and after.

Then the CHECK `licence_url IS NOT NULL OR licence_id = 'none'`: added NOT VALID, so the
ALTER holds its lock only for an instant, and validated in a transaction of its own, which
lets reads and writes of datasets go on meanwhile.

The downgrade drops the check and keeps the licences: they are valid before it too.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from datahub.audit import chain_hash, entry_body
from datahub.storage.audit import CHAIN_LOCK, GENESIS

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

LICENCES = "http://dcat-ap.de/def/licenses/"
# The dcat-ap.de licence list, and the licence ids datahub's datasets commonly carry, as
# datahub.opendata.vocabularies had them when this revision was written.
LICENCE_IDS = (
    "apache",
    "bsd",
    "cc-by",
    "cc-by-de/3.0",
    "cc-by-nc",
    "cc-by-nc-de/3.0",
    "cc-by-nc/4.0",
    "cc-by-nd",
    "cc-by-nd/3.0",
    "cc-by-nd/4.0",
    "cc-by-sa",
    "cc-by-sa-de/3.0",
    "cc-by-sa/4.0",
    "cc-by/4.0",
    "cc-zero",
    "ccpdm/1.0",
    "dl-by-de/1.0",
    "dl-by-de/2.0",
    "dl-by-nc-de/1.0",
    "dl-zero-de/2.0",
    "geoNutz/20131001",
    "geonutz/20130319",
    "gfdl",
    "gpl/3.0",
    "mozilla",
    "odbl",
    "odby",
    "odcpddl",
    "officialWork",
    "other-closed",
    "other-commercial",
    "other-freeware",
    "other-open",
    "other-opensource",
)
KNOWN_IDS = {
    "dl-de/by-2-0": "dl-by-de/2.0",
    "dl-de-by-2.0": "dl-by-de/2.0",
    "dl-de/zero-2-0": "dl-zero-de/2.0",
    "dl-de-zero-2.0": "dl-zero-de/2.0",
    "cc-by-4.0": "cc-by/4.0",
    "cc-by-sa-4.0": "cc-by-sa/4.0",
    "cc0-1.0": "cc-zero",
    "odbl-1.0": "odbl",
}
BY_CLASS = {"open": "other-open", "restricted": "other-closed", "commercial": "other-commercial"}


def _values(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(f"('{key}', '{LICENCES}{name}')" for key, name in pairs)


UPGRADE = f"""
UPDATE dataset ds SET licence_id = 'none', licence_name = 'no licence given',
                      updated_at = now()
FROM supplier s
WHERE s.id = ds.supplier_id AND ds.slug = s.slug AND ds.licence_url IS NULL
  AND ds.licence_id = 'proprietary' AND ds.licence_name = 'All rights reserved';

WITH listed (key, iri) AS (VALUES {_values([(name, name) for name in LICENCE_IDS])}),
     known (key, iri) AS (VALUES {_values(list(KNOWN_IDS.items()))}),
     by_class (key, iri) AS (VALUES {_values(list(BY_CLASS.items()))})
UPDATE dataset ds SET licence_url = coalesce(
        ds.licence_uri,
        (SELECT iri FROM listed
         WHERE key = replace(btrim(ds.licence_id), '{LICENCES}', '')),
        (SELECT iri FROM known WHERE key = lower(btrim(ds.licence_id))),
        (SELECT iri FROM by_class WHERE key = ds.licence_class)),
    updated_at = now()
WHERE ds.licence_url IS NULL AND ds.licence_id <> 'none';

ALTER TABLE dataset ADD CONSTRAINT ck_dataset_licence_given
    CHECK (licence_url IS NOT NULL OR licence_id = 'none') NOT VALID;
"""

DOWNGRADE = "ALTER TABLE dataset DROP CONSTRAINT ck_dataset_licence_given;"


ACTOR = f"migration:{revision}"
LICENCE_FIELDS = "slug, licence_id, licence_name, licence_url"


def _licences(conn: sa.Connection) -> dict[str, dict[str, Any]]:
    rows = conn.execute(sa.text(f"SELECT {LICENCE_FIELDS} FROM dataset")).all()
    return {
        slug: {"licence_id": licence_id, "licence_name": name, "licence_url": url}
        for slug, licence_id, name, url in rows
    }


def _audit(conn: sa.Connection, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Append a `dataset.update` entry for each dataset the upgrade changed, chained as
    datahub.audit does, with this revision's own SQL (the table as 0015 made it)."""
    changed = sorted(slug for slug in before if before[slug] != after[slug])
    if not changed:
        return
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": CHAIN_LOCK})
    seq, prev, at = conn.execute(
        sa.text(
            "SELECT coalesce(max(seq), 0), coalesce((SELECT hash FROM audit_log "
            "ORDER BY seq DESC LIMIT 1), :genesis), clock_timestamp() FROM audit_log"
        ),
        {"genesis": GENESIS},
    ).one()
    prev = bytes(prev)
    for slug in changed:
        seq += 1
        fields = {
            "seq": seq,
            "at": at,
            "actor": ACTOR,
            "action": "dataset.update",
            "target": f"dataset:{slug}",
            "before": before[slug],
            "after": after[slug],
        }
        digest = chain_hash(prev, entry_body(**fields))
        conn.execute(
            sa.text(
                "INSERT INTO audit_log (seq, at, actor, action, target, before, after, "
                "prev_hash, hash) VALUES (:seq, :at, :actor, :action, :target, "
                "CAST(:before AS jsonb), CAST(:after AS jsonb), :prev_hash, :hash)"
            ),
            {
                **fields,
                "before": json.dumps(fields["before"]),
                "after": json.dumps(fields["after"]),
                "prev_hash": prev,
                "hash": digest,
            },
        )
        prev = digest


def upgrade() -> None:
    conn = op.get_bind()
    before = _licences(conn)
    op.execute(UPGRADE)
    _audit(conn, before, _licences(conn))
    # Validating scans the table under a lock that lets reads and writes go on, but only
    # in a transaction of its own: the ALTER above holds its stronger lock until commit.
    with op.get_context().autocommit_block():
        op.execute("ALTER TABLE dataset VALIDATE CONSTRAINT ck_dataset_licence_given")


def downgrade() -> None:
    op.execute(DOWNGRADE)
