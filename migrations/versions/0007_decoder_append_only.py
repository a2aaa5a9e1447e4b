"""Decoders are append-only; readings refer to them without a per-row foreign-key check.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

The foreign key from `reading.decoder_id` to `decoder` (0002) ran a trigger for every
reading written: a `SELECT … FOR KEY SHARE` of the decoder row, which also locked that row.
With two ingest workers locking the same few rows, each lock became a multixact. Measured
with pg_stat_statements on the benchmark's 100,000 uplinks: the readings' INSERT took
166 ms per batch with the key and 110 ms without, and end to end rose from 4,803 to
6,189 uplinks/s.

What the key guarded is kept by guarding the other side: `decoder` rows are never updated
nor deleted (nothing in datahub does either; ids are only ever read from this table), so
triggers refuse UPDATE, DELETE and TRUNCATE, and every id a reading holds stays resolvable.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE reading DROP CONSTRAINT fk_reading_decoder;

CREATE FUNCTION refuse_decoder_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'decoder rows are append-only: readings refer to them by id'
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER tr_decoder_append_only BEFORE UPDATE OR DELETE ON decoder
FOR EACH ROW EXECUTE FUNCTION refuse_decoder_change();
CREATE TRIGGER tr_decoder_no_truncate BEFORE TRUNCATE ON decoder
FOR EACH STATEMENT EXECUTE FUNCTION refuse_decoder_change();
"""

# NOT VALID as in 0002: checking the existing readings would scan them all under a lock.
DOWNGRADE = """
DROP TRIGGER tr_decoder_no_truncate ON decoder;
DROP TRIGGER tr_decoder_append_only ON decoder;
DROP FUNCTION refuse_decoder_change();
ALTER TABLE reading ADD CONSTRAINT fk_reading_decoder
    FOREIGN KEY (decoder_id) REFERENCES decoder (id) NOT VALID;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
