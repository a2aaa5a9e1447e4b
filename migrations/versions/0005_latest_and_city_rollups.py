"""The newest reading of each device and metric, and daily rollups per city and dataset.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

`/v1/latest` of a city asked one index probe of `reading` per device and metric (3,000
for a city of 1,000 climate sensors); `reading_latest` answers it with one row each. The
refresher keeps it with the hourly rollup it derives from, from the same marks: a query
uses a row only while no mark of its device lies at or after the row's hour, and probes
`reading` otherwise, so late and re-decoded readings are never hidden.

A city-wide daily series read one `reading_daily` row per device and day (90,000 for 90
days of 1,000 devices); `reading_city_daily` holds their merged partials per city,
dataset, metric and day, which the refresher recomputes for the days of marked devices.
A device that changes city or dataset leaves the rows of both groups stale: a trigger
marks them in `rollup_city_dirty`, under the refresher's advisory lock, so that no round
of the refresher can read the old membership and clear the new marks. A query reads a
(dataset, day) from `reading_city_daily` only while neither kind of mark covers it.

The upgrade fills all three from the rollups of 0004.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE reading_latest (
    device_id  integer NOT NULL,
    metric     text NOT NULL,
    time       timestamptz NOT NULL,
    value      double precision NOT NULL,
    CONSTRAINT pk_reading_latest PRIMARY KEY (device_id, metric)
);

-- One backward probe of the hourly key per pair (the pairs from the much smaller daily
-- rollup, which holds the same ones), not a sort of every hour.
INSERT INTO reading_latest (device_id, metric, time, value)
SELECT p.device_id, p.metric, h.last_time, h.last_value
FROM (SELECT DISTINCT device_id, metric FROM reading_daily) AS p
CROSS JOIN LATERAL (
    SELECT h.last_time, h.last_value FROM reading_hourly h
    WHERE h.device_id = p.device_id AND h.metric = p.metric
    ORDER BY h.bucket DESC
    LIMIT 1
) AS h;

CREATE TABLE reading_city_daily (
    city        text NOT NULL,
    dataset_id  integer NOT NULL,
    metric      text NOT NULL,
    bucket      timestamptz NOT NULL,
    count       bigint NOT NULL,
    sum         double precision NOT NULL,
    min         double precision NOT NULL,
    max         double precision NOT NULL,
    last_time   timestamptz NOT NULL,
    last_value  double precision NOT NULL,
    CONSTRAINT pk_reading_city_daily PRIMARY KEY (city, metric, bucket, dataset_id)
);
-- The refresher recomputes a day of a city from every device's row of that day.
CREATE INDEX ix_reading_daily_bucket ON reading_daily (bucket);

-- (city, dataset, day) groups whose devices changed; no key, like rollup_dirty.
CREATE TABLE rollup_city_dirty (
    city        text NOT NULL,
    dataset_id  integer NOT NULL,
    day         timestamptz NOT NULL
);

CREATE FUNCTION mark_device_rollup_group() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The refresher's lock (storage/rollups.py REFRESH_LOCK), held to commit: no round
    -- runs between this mark and the commit of the new city or dataset.
    PERFORM pg_advisory_xact_lock({REFRESH_LOCK});
    INSERT INTO rollup_city_dirty (city, dataset_id, day)
    SELECT g.city, g.dataset_id, y.day
    FROM (VALUES (OLD.city, OLD.dataset_id), (NEW.city, NEW.dataset_id)) AS g (city, dataset_id)
    CROSS JOIN (SELECT DISTINCT bucket AS day FROM reading_daily WHERE device_id = NEW.id) AS y;
    RETURN NULL;
END
$$;

CREATE TRIGGER tr_device_rollup_group
AFTER UPDATE OF city, dataset_id ON device
FOR EACH ROW
WHEN (OLD.city IS DISTINCT FROM NEW.city OR OLD.dataset_id IS DISTINCT FROM NEW.dataset_id)
EXECUTE FUNCTION mark_device_rollup_group();

INSERT INTO reading_city_daily
SELECT d.city, d.dataset_id, y.metric, y.bucket, sum(y.count), sum(y.sum), min(y.min),
       max(y.max), max(y.last_time), (array_agg(y.last_value ORDER BY y.last_time DESC))[1]
FROM reading_daily y JOIN device d ON d.id = y.device_id
GROUP BY 1, 2, 3, 4;
""".replace("{REFRESH_LOCK}", str(0x726F6C6C7570))

DOWNGRADE = """
DROP TRIGGER tr_device_rollup_group ON device;
DROP FUNCTION mark_device_rollup_group();
DROP TABLE rollup_city_dirty;
DROP TABLE reading_city_daily;
DROP INDEX ix_reading_daily_bucket;
DROP TABLE reading_latest;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
