"""Initial schema: suppliers, sources, devices, raw uplinks, readings, dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Uplinks and readings become TimescaleDB hypertables when the extension can be created;
on plain PostgreSQL they stay ordinary tables and every query still works, because the
queries use only `date_bin` and standard SQL, never TimescaleDB functions.
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

CITIES = "('dortmund', 'schwerte')"

UPGRADE = f"""
CREATE TABLE supplier (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        text NOT NULL CONSTRAINT uq_supplier_slug UNIQUE
                CONSTRAINT ck_supplier_slug CHECK (slug ~ '^[a-z0-9][a-z0-9-]{{0,62}}$'),
    name        text NOT NULL,
    kind        text NOT NULL DEFAULT 'other',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE source (
    name        text PRIMARY KEY,
    city        text NOT NULL CONSTRAINT ck_source_city CHECK (city IN {CITIES}),
    format      text NOT NULL,
    broker      text NOT NULL,
    topic       text NOT NULL,
    qos         smallint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE device (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dev_eui       text NOT NULL CONSTRAINT uq_device_dev_eui UNIQUE
                  CONSTRAINT ck_device_dev_eui CHECK (dev_eui ~ '^[0-9A-F]{{16}}$'),
    name          text NOT NULL,
    city          text NOT NULL CONSTRAINT ck_device_city CHECK (city IN {CITIES}),
    supplier_id   integer NOT NULL CONSTRAINT fk_device_supplier REFERENCES supplier (id),
    profile       text NOT NULL,
    latitude      double precision
                  CONSTRAINT ck_device_latitude CHECK (latitude BETWEEN -90 AND 90),
    longitude     double precision
                  CONSTRAINT ck_device_longitude CHECK (longitude BETWEEN -180 AND 180),
    last_seen_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_device_city ON device (city);
CREATE INDEX ix_device_supplier_id ON device (supplier_id);

-- The dedup gate: one row per uplink ever stored. An uplink's partition time can fall
-- back to the arrival time when its message carries none, so the hypertable's own key
-- cannot recognise every redelivery; this key-only table can.
CREATE TABLE uplink_dedup (
    dedup_key    bytea PRIMARY KEY,
    received_at  timestamptz NOT NULL
);

CREATE TABLE uplink (
    received_at    timestamptz NOT NULL,
    dedup_key      bytea NOT NULL,
    dev_eui        text NOT NULL,
    device_id      integer,
    source         text NOT NULL,
    city           text NOT NULL,
    f_port         smallint,
    f_cnt          bigint NOT NULL,
    dev_addr       text,
    payload        bytea NOT NULL,
    radio          jsonb NOT NULL,
    ns_decoded     jsonb,
    decode_status  text NOT NULL,
    decode_error   text,
    decoder        text,
    ingested_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_uplink PRIMARY KEY (received_at, dedup_key)
);
CREATE INDEX ix_uplink_dev_eui_received_at ON uplink (dev_eui, received_at DESC);
CREATE INDEX ix_uplink_decode_status ON uplink (decode_status, received_at)
    WHERE decode_status <> 'decoded';

-- Readings carry the device's integer id and are keyed so that re-storing the readings
-- of one uplink is a no-op; the key doubles as the index of every series query.
CREATE TABLE reading (
    time       timestamptz NOT NULL,
    device_id  integer NOT NULL,
    metric     text NOT NULL,
    value      double precision NOT NULL,
    CONSTRAINT pk_reading PRIMARY KEY (device_id, metric, time)
);
CREATE INDEX ix_reading_metric_time ON reading (metric, time DESC);
-- A device's series over all its metrics, in time order (raw readings without metric=).
CREATE INDEX ix_reading_device_id_time ON reading (device_id, time);

CREATE TABLE dead_letter (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    source       text NOT NULL,
    topic        text NOT NULL,
    stage        text NOT NULL,
    reason       text NOT NULL,
    detail       text NOT NULL,
    body         bytea NOT NULL,
    dev_eui      text,
    dedup_key    bytea
);
CREATE INDEX ix_dead_letter_received_at ON dead_letter (received_at);
CREATE INDEX ix_dead_letter_reason ON dead_letter (reason, received_at);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable('uplink', 'received_at',
                                  chunk_time_interval => INTERVAL '1 day',
                                  create_default_indexes => false);
        -- The default time indexes would duplicate what the keys and indexes above cover.
        PERFORM create_hypertable('reading', 'time',
                                  chunk_time_interval => INTERVAL '7 days',
                                  create_default_indexes => false);
    END IF;
END
$$;
"""

DOWNGRADE = """
DROP TABLE dead_letter;
DROP TABLE reading;
DROP TABLE uplink;
DROP TABLE uplink_dedup;
DROP TABLE device;
DROP TABLE source;
DROP TABLE supplier;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
