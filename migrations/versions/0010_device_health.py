"""Device and gateway health: one row per device, one per device and gateway that hears it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

The operator's view of thousands of devices must answer at once, while each figure (frame
loss over 7 days, median RSSI, airtime) takes a device's whole week of uplinks. The
ingest's health refresher (ops/refresh.py) recomputes a device's rows from its raw
uplinks and battery readings once it has been heard since the last computation (at most
once a minute), and every device at least hourly, so that the 24-hour windows move on for
devices that fell silent. The operator views read these small tables and nothing else.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE device_health (
    device_id              integer PRIMARY KEY
                           CONSTRAINT fk_device_health_device REFERENCES device (id)
                           ON DELETE CASCADE,
    computed_at            timestamptz NOT NULL,
    -- device.last_seen_at when computed: a device heard since is due again.
    last_seen_at           timestamptz,
    frames_24h             integer NOT NULL,
    lost_24h               integer NOT NULL,
    frames_7d              integer NOT NULL,
    lost_7d                integer NOT NULL,
    resets_7d              integer NOT NULL,
    learned_interval_s     integer,
    rssi_median            double precision,
    rssi_worst             double precision,
    snr_median             double precision,
    snr_worst              double precision,
    data_rates             jsonb NOT NULL,
    airtime_24h_s          double precision NOT NULL,
    battery_metric         text,
    battery_value          double precision,
    battery_time           timestamptz,
    battery_trend_per_day  double precision,
    battery_empty_at       timestamptz
);
-- The refresher's round looks for rows computed long ago.
CREATE INDEX ix_device_health_computed_at ON device_health (computed_at);

CREATE TABLE device_gateway (
    device_id      integer NOT NULL
                   CONSTRAINT fk_device_gateway_device REFERENCES device (id) ON DELETE CASCADE,
    gateway_id     text NOT NULL,
    source         text NOT NULL,
    city           text NOT NULL,
    uplinks_24h    integer NOT NULL,
    uplinks_7d     integer NOT NULL,
    last_heard_at  timestamptz NOT NULL,
    rssi_best      double precision,
    rssi_median    double precision,
    snr_best       double precision,
    snr_median     double precision,
    CONSTRAINT pk_device_gateway PRIMARY KEY (device_id, gateway_id)
);
CREATE INDEX ix_device_gateway_gateway_id ON device_gateway (gateway_id);
"""

DOWNGRADE = """
DROP TABLE device_gateway;
DROP TABLE device_health;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
