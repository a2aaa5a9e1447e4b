"""Rollups: hourly and daily partial aggregates per device and metric, kept by the service.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

The Apache build of TimescaleDB has no continuous aggregates, and plain PostgreSQL has
none at all, so the service keeps its own. Every writer of `reading` marks the (device,
hour) pairs it touched in `rollup_dirty`, in the same transaction; the ingest's refresher
recomputes those hours from the raw readings, and their days from the hours. A query
uses a rollup row only while its hour (or day) is not marked, so late or re-decoded
readings are never hidden: marked hours are aggregated from `reading` until refreshed.

Each row holds mergeable partials (count, sum, min, max, last value and its time), so
avg/min/max/sum/count/last of any whole number of hours or days derive from them.
Buckets start at `date_bin(width, time, 2000-01-03)`, as the queries' buckets do.
The upgrade fills both tables from the readings already stored.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ORIGIN = "TIMESTAMPTZ '2000-01-03 00:00:00+00'"


def _rollup_table(name: str) -> str:
    return f"""
CREATE TABLE {name} (
    device_id   integer NOT NULL,
    metric      text NOT NULL,
    bucket      timestamptz NOT NULL,
    count       integer NOT NULL,
    sum         double precision NOT NULL,
    min         double precision NOT NULL,
    max         double precision NOT NULL,
    last_time   timestamptz NOT NULL,
    last_value  double precision NOT NULL,
    CONSTRAINT pk_{name} PRIMARY KEY (device_id, metric, bucket)
);
"""


UPGRADE = f"""
{_rollup_table("reading_hourly")}
{_rollup_table("reading_daily")}
-- City-wide series read one metric of many devices over a range of days.
CREATE INDEX ix_reading_daily_metric_bucket ON reading_daily (metric, bucket);

-- Appended to by every transaction that writes readings, emptied by the refresher; no key,
-- so that concurrent writers never wait for each other here.
CREATE TABLE rollup_dirty (
    device_id  integer NOT NULL,
    hour       timestamptz NOT NULL
);
CREATE INDEX ix_rollup_dirty_device_id_hour ON rollup_dirty (device_id, hour);

INSERT INTO reading_hourly
SELECT device_id, metric, date_bin(INTERVAL '1 hour', time, {ORIGIN}), count(*), sum(value),
       min(value), max(value), max(time), (array_agg(value ORDER BY time DESC))[1]
FROM reading
GROUP BY 1, 2, 3;

INSERT INTO reading_daily
SELECT device_id, metric, date_bin(INTERVAL '1 day', bucket, {ORIGIN}), sum(count), sum(sum),
       min(min), max(max), max(last_time), (array_agg(last_value ORDER BY last_time DESC))[1]
FROM reading_hourly
GROUP BY 1, 2, 3;
"""

DOWNGRADE = """
DROP TABLE rollup_dirty;
DROP TABLE reading_daily;
DROP TABLE reading_hourly;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
