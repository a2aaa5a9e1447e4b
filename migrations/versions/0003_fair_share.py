"""Fair share: datasets and licences, consumers and API keys, grants, tariffs, usage, periods.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Every device belongs to one dataset of its own supplier (a composite foreign key keeps
the two consistent). Devices registered before this revision go into one dataset per
supplier, named after it and `restricted`: nothing becomes public by an upgrade.

Usage is billing data: one ledger row per (request, dataset), written in the request's
transaction, so the ledger equals what was served. `period` stays NULL until the month is
closed; a closed period (`fairshare_period`) and the usage assigned to it never change,
which triggers enforce.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SLUG = "'^[a-z0-9][a-z0-9-]{0,62}$'"
PURPOSES = "('public_interest', 'research', 'commercial')"

UPGRADE = f"""
CREATE TABLE dataset (
    id             integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug           text NOT NULL CONSTRAINT uq_dataset_slug UNIQUE
                   CONSTRAINT ck_dataset_slug CHECK (slug ~ {SLUG}),
    supplier_id    integer NOT NULL CONSTRAINT fk_dataset_supplier REFERENCES supplier (id),
    name           text NOT NULL,
    licence_class  text NOT NULL
                   CONSTRAINT ck_dataset_licence_class
                   CHECK (licence_class IN ('open', 'restricted', 'commercial')),
    licence_id     text NOT NULL,
    licence_name   text NOT NULL,
    licence_url    text,
    attribution    text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- The target of device's composite key: a device's dataset is its supplier's.
    CONSTRAINT uq_dataset_id_supplier_id UNIQUE (id, supplier_id)
);

INSERT INTO dataset (slug, supplier_id, name, licence_class, licence_id, licence_name,
                     attribution)
SELECT s.slug, s.id, s.name, 'restricted', 'proprietary', 'All rights reserved', s.name
FROM supplier s;

ALTER TABLE device ADD COLUMN dataset_id integer;
UPDATE device d SET dataset_id = ds.id FROM dataset ds WHERE ds.supplier_id = d.supplier_id;
ALTER TABLE device ALTER COLUMN dataset_id SET NOT NULL;
ALTER TABLE device ADD CONSTRAINT fk_device_dataset
    FOREIGN KEY (dataset_id, supplier_id) REFERENCES dataset (id, supplier_id);
CREATE INDEX ix_device_dataset_id ON device (dataset_id);

CREATE TABLE consumer (
    id                 integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug               text NOT NULL CONSTRAINT uq_consumer_slug UNIQUE
                       CONSTRAINT ck_consumer_slug CHECK (slug ~ {SLUG}),
    name               text NOT NULL,
    purpose            text NOT NULL CONSTRAINT ck_consumer_purpose CHECK (purpose IN {PURPOSES}),
    -- A consumer acting for a supplier sees that supplier's statements.
    supplier_id        integer CONSTRAINT fk_consumer_supplier REFERENCES supplier (id),
    monthly_quota      bigint CONSTRAINT ck_consumer_monthly_quota CHECK (monthly_quota >= 0),
    requests_per_s     integer CONSTRAINT ck_consumer_requests_per_s CHECK (requests_per_s > 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Keys are shown once; only a SHA-256 of the whole key is kept (the keys are 256-bit
-- random, so a slow password hash would add nothing). `prefix` finds the row.
CREATE TABLE api_key (
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer_id  integer NOT NULL CONSTRAINT fk_api_key_consumer REFERENCES consumer (id),
    prefix       text NOT NULL CONSTRAINT uq_api_key_prefix UNIQUE,
    key_hash     bytea NOT NULL,
    scopes       text[] NOT NULL
                 CONSTRAINT ck_api_key_scopes CHECK (scopes <@ ARRAY['read', 'admin']::text[]),
    label        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX ix_api_key_consumer_id ON api_key (consumer_id);

CREATE TABLE access_grant (
    consumer_id  integer NOT NULL CONSTRAINT fk_access_grant_consumer REFERENCES consumer (id),
    dataset_id   integer NOT NULL CONSTRAINT fk_access_grant_dataset REFERENCES dataset (id),
    granted_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_access_grant PRIMARY KEY (consumer_id, dataset_id)
);

-- Prices are integer cents per million observations; `shadow_cents_per_million` values
-- use that pays nothing. A dataset's tariffs are versioned: a new version from
-- `valid_from` on, the old ones kept for the periods they rated.
CREATE TABLE tariff (
    id                         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id                 integer NOT NULL CONSTRAINT fk_tariff_dataset
                               REFERENCES dataset (id),
    purpose                    text NOT NULL
                               CONSTRAINT ck_tariff_purpose CHECK (purpose IN {PURPOSES}),
    version                    integer NOT NULL CONSTRAINT ck_tariff_version CHECK (version > 0),
    valid_from                 timestamptz NOT NULL,
    cents_per_million          bigint NOT NULL
                               CONSTRAINT ck_tariff_cents CHECK (cents_per_million >= 0),
    shadow_cents_per_million   bigint NOT NULL
                               CONSTRAINT ck_tariff_shadow CHECK (shadow_cents_per_million >= 0),
    platform_fee_basis_points  integer NOT NULL
                               CONSTRAINT ck_tariff_fee
                               CHECK (platform_fee_basis_points BETWEEN 0 AND 10000),
    created_at                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_tariff_dataset_id_purpose_version UNIQUE (dataset_id, purpose, version),
    CONSTRAINT uq_tariff_dataset_id_purpose_valid_from UNIQUE (dataset_id, purpose, valid_from)
);

CREATE TABLE fairshare_period (
    period      text PRIMARY KEY
                CONSTRAINT ck_fairshare_period CHECK (period ~ '^\\d{{4}}-\\d{{2}}$'),
    closed_at   timestamptz NOT NULL DEFAULT now(),
    hash        text NOT NULL,
    result      jsonb NOT NULL
);

-- One row per (request, dataset). consumer_id NULL: an anonymous caller.
CREATE TABLE usage (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id    uuid NOT NULL,
    consumer_id   integer CONSTRAINT fk_usage_consumer REFERENCES consumer (id),
    purpose       text NOT NULL CONSTRAINT ck_usage_purpose CHECK (purpose IN {PURPOSES}),
    dataset_id    integer NOT NULL CONSTRAINT fk_usage_dataset REFERENCES dataset (id),
    supplier_id   integer NOT NULL CONSTRAINT fk_usage_supplier REFERENCES supplier (id),
    endpoint      text NOT NULL,
    observations  bigint NOT NULL CONSTRAINT ck_usage_observations CHECK (observations > 0),
    occurred_at   timestamptz NOT NULL DEFAULT now(),
    period        text CONSTRAINT fk_usage_period REFERENCES fairshare_period (period),
    CONSTRAINT uq_usage_request_id_dataset_id UNIQUE (request_id, dataset_id)
);
CREATE INDEX ix_usage_open ON usage (occurred_at) WHERE period IS NULL;
CREATE INDEX ix_usage_period ON usage (period);
CREATE INDEX ix_usage_consumer_id_occurred_at ON usage (consumer_id, occurred_at);

-- Observations charged against each consumer's monthly quota; the conditional upsert
-- on this row is what keeps concurrent requests from passing the quota.
CREATE TABLE quota_usage (
    consumer_id   integer NOT NULL CONSTRAINT fk_quota_usage_consumer REFERENCES consumer (id),
    month         date NOT NULL,
    observations  bigint NOT NULL,
    CONSTRAINT pk_quota_usage PRIMARY KEY (consumer_id, month)
);

-- A request retried with the same Idempotency-Key is served again but not counted again.
CREATE TABLE idempotency_key (
    subject      text NOT NULL,
    key          text NOT NULL,
    fingerprint  text NOT NULL,
    request_id   uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_idempotency_key PRIMARY KEY (subject, key)
);

-- Requests per subject (a consumer, or an anonymous caller's address) per second.
CREATE UNLOGGED TABLE rate_window (
    subject   text NOT NULL,
    second    timestamptz NOT NULL,
    requests  integer NOT NULL,
    CONSTRAINT pk_rate_window PRIMARY KEY (subject, second)
);

CREATE FUNCTION forbid_closed_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'fair share: % of a closed period cannot change', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE TRIGGER tr_fairshare_period_immutable BEFORE UPDATE OR DELETE ON fairshare_period
    FOR EACH ROW EXECUTE FUNCTION forbid_closed_change();
CREATE TRIGGER tr_usage_closed_immutable BEFORE UPDATE OR DELETE ON usage
    FOR EACH ROW WHEN (OLD.period IS NOT NULL) EXECUTE FUNCTION forbid_closed_change();
"""

DOWNGRADE = """
DROP TABLE rate_window;
DROP TABLE idempotency_key;
DROP TABLE quota_usage;
DROP TABLE usage;
DROP TABLE fairshare_period;
DROP FUNCTION forbid_closed_change();
DROP TABLE tariff;
DROP TABLE access_grant;
DROP TABLE api_key;
DROP TABLE consumer;
ALTER TABLE device DROP COLUMN dataset_id;
DROP TABLE dataset;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
