"""Reading provenance: which decoder (and mapping) produced each reading.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Readings may number tens of millions, so a reading does not repeat the decoder's name:
it carries a smallint into `decoder`, whose names read `vendor/model@version#mapping`
(see `datahub.ingest.decode.decoder_name`). The column is nullable: readings stored
before this revision have no recorded decoder until `datahub redecode` rewrites them.
Adding a nullable column without a default only changes the catalog, on a hypertable as
on a plain table, so the upgrade neither rewrites nor scans the readings.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE decoder (
    id          smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CONSTRAINT uq_decoder_name UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE reading ADD COLUMN decoder_id smallint;
-- NOT VALID skips checking the existing rows, all NULL in a new column, which would scan
-- every reading under an exclusive lock; new and updated rows are checked all the same.
ALTER TABLE reading ADD CONSTRAINT fk_reading_decoder
    FOREIGN KEY (decoder_id) REFERENCES decoder (id) NOT VALID;
"""

DOWNGRADE = """
ALTER TABLE reading DROP COLUMN decoder_id;
DROP TABLE decoder;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
