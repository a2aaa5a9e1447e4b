"""Governance: an append-only, hash-chained audit log; retention and legal basis per dataset.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04

`audit_log` records every administrative change: who (`key:<prefix>` or `cli:<user>`),
when, what (an action and its target), and the record before and after it as JSON. Each
entry's `hash` is the SHA-256 of the previous entry's hash and the entry's canonical
serialisation (datahub.audit, docs/fair-share.md), and `seq` counts entries without a gap,
so an edited, deleted or reordered entry breaks the chain where it was touched. Triggers
refuse UPDATE, DELETE and TRUNCATE, as 0007 does for `decoder`: the log is only appended
to, and only a superuser who disables the triggers can change it, which `datahub audit
verify` then finds.

An API key may have the `ombudsman` scope, never with `admin`: the ombudsman reads what
an administrator reads and changes nothing.

A dataset gains how many days its raw uplinks and raw readings are kept (NULL: for ever;
the hourly and daily rollups are kept regardless) and the legal basis of its processing
(free text, e.g. "Art. 6(1)(e) GDPR, public task: waste collection"), both NULL after the
upgrade: nothing is deleted by an upgrade.
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE audit_log (
    seq       bigint PRIMARY KEY CHECK (seq > 0),
    at        timestamptz NOT NULL,
    actor     text NOT NULL,
    action    text NOT NULL,
    target    text NOT NULL,
    before    jsonb,
    after     jsonb,
    prev_hash bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash      bytea NOT NULL UNIQUE CHECK (length(hash) = 32)
);
CREATE INDEX ix_audit_log_action ON audit_log (action, seq);
CREATE INDEX ix_audit_log_target ON audit_log (target, seq);

CREATE FUNCTION refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: entries are never changed nor deleted'
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER tr_audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER tr_audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();

ALTER TABLE api_key DROP CONSTRAINT ck_api_key_scopes;
ALTER TABLE api_key ADD CONSTRAINT ck_api_key_scopes
    CHECK (scopes <@ ARRAY['read', 'admin', 'ombudsman']::text[]
           AND NOT scopes @> ARRAY['admin', 'ombudsman']::text[]);

ALTER TABLE dataset
    ADD COLUMN uplink_retention_days integer CHECK (uplink_retention_days > 0),
    ADD COLUMN reading_retention_days integer CHECK (reading_retention_days > 0),
    ADD COLUMN legal_basis text;
"""

DOWNGRADE = """
ALTER TABLE dataset
    DROP COLUMN legal_basis,
    DROP COLUMN reading_retention_days,
    DROP COLUMN uplink_retention_days;
-- Ombudsman keys cannot stay: revoked, and their scope taken off, so the old check holds.
UPDATE api_key SET revoked_at = coalesce(revoked_at, now()),
                   scopes = array_remove(scopes, 'ombudsman')
WHERE 'ombudsman' = ANY(scopes);
UPDATE api_key SET scopes = ARRAY['read'] WHERE scopes = '{}';
ALTER TABLE api_key DROP CONSTRAINT ck_api_key_scopes;
ALTER TABLE api_key ADD CONSTRAINT ck_api_key_scopes
    CHECK (scopes <@ ARRAY['read', 'admin']::text[]);
DROP TABLE audit_log;
DROP FUNCTION refuse_audit_change();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
