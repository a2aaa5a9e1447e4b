"""Open data: catalogue metadata of datasets, placement and area of devices, bulk files.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

A dataset gains what its DCAT-AP.de record needs and the table lacked: an English title,
descriptions in both languages, keywords, EU data themes, a contact, a licence IRI of the
dcat-ap.de licence list and a contributor id (both NULL: derived, see
datahub.opendata.vocabularies), and two permissions of its supplier: to list a restricted
or commercial dataset in the catalogue, and to publish open summaries of it (counts per
district that show no single device). Both default to false: nothing becomes public by an
upgrade.

A device gains its placement (indoor or outdoor air), the area it belongs to (a district
or parking zone, as its supplier names them) and, for a level sensor, the distance it
reads when its container is empty and when it is full.

`bulk_file` records each written bulk file: its period (a UTC day `2026-12-01` or a month
`2026-12`), the file's name under `opendata.bulk_dir`, rows, bytes and SHA-256. A file is
never changed: late data makes a new version under a new name. `bulk_stale` holds the
(dataset, day) pairs whose readings changed since their file was written; the rollup
refresher adds them from its own marks (storage/rollups.py).
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE dataset
    ADD COLUMN title_en text,
    ADD COLUMN description_de text,
    ADD COLUMN description_en text,
    ADD COLUMN keywords text[] NOT NULL DEFAULT '{}',
    ADD COLUMN themes text[] NOT NULL DEFAULT '{}',
    ADD COLUMN contact_name text,
    ADD COLUMN contact_email text,
    ADD COLUMN licence_uri text,
    ADD COLUMN contributor_id text,
    ADD COLUMN catalogue_listed boolean NOT NULL DEFAULT false,
    ADD COLUMN public_summaries boolean NOT NULL DEFAULT false;

ALTER TABLE device
    ADD COLUMN placement text
        CONSTRAINT ck_device_placement CHECK (placement IN ('indoor', 'outdoor')),
    ADD COLUMN area text,
    ADD COLUMN level_empty double precision,
    ADD COLUMN level_full double precision,
    ADD CONSTRAINT ck_device_level
        CHECK ((level_empty IS NULL) = (level_full IS NULL) AND level_empty <> level_full);

CREATE TABLE bulk_file (
    dataset_id    integer NOT NULL CONSTRAINT fk_bulk_file_dataset REFERENCES dataset (id),
    period        text NOT NULL
                  CONSTRAINT ck_bulk_file_period CHECK (period ~ '^\\d{4}-\\d{2}(-\\d{2})?$'),
    period_start  timestamptz NOT NULL,
    period_end    timestamptz NOT NULL,
    name          text NOT NULL CONSTRAINT uq_bulk_file_name UNIQUE,
    rows          bigint NOT NULL CONSTRAINT ck_bulk_file_rows CHECK (rows >= 0),
    bytes         bigint NOT NULL CONSTRAINT ck_bulk_file_bytes CHECK (bytes > 0),
    sha256        text NOT NULL CONSTRAINT ck_bulk_file_sha256 CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    version       integer NOT NULL CONSTRAINT ck_bulk_file_version CHECK (version > 0),
    written_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_bulk_file PRIMARY KEY (dataset_id, period)
);

CREATE TABLE bulk_stale (
    dataset_id  integer NOT NULL,
    day         timestamptz NOT NULL,
    CONSTRAINT pk_bulk_stale PRIMARY KEY (dataset_id, day)
);
"""

DOWNGRADE = """
DROP TABLE bulk_stale;
DROP TABLE bulk_file;
ALTER TABLE device
    DROP CONSTRAINT ck_device_level,
    DROP COLUMN level_full,
    DROP COLUMN level_empty,
    DROP COLUMN area,
    DROP COLUMN placement;
ALTER TABLE dataset
    DROP COLUMN public_summaries,
    DROP COLUMN catalogue_listed,
    DROP COLUMN contributor_id,
    DROP COLUMN licence_uri,
    DROP COLUMN contact_email,
    DROP COLUMN contact_name,
    DROP COLUMN themes,
    DROP COLUMN keywords,
    DROP COLUMN description_en,
    DROP COLUMN description_de,
    DROP COLUMN title_en;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
