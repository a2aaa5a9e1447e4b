"""Stable integer ids for metrics and profiles, and the history of each device's location.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

The SensorThings API (api/sensorthings/) names every entity by an integer that must stay
the same across restarts and re-imports. Devices have one (`device.id`); metrics and
profiles are names, so `metric` and `profile` give each name an id once, never reused.
A Datastream's id is derived from its device's and metric's, an Observation's from its
Datastream's and its time (see datahub/observations.py): no id is stored per reading, so
neither the ingest's COPY nor the reading hypertable changes.

`profile` rows are added by a trigger whenever a device names a profile not seen before
(INSERT … WHERE NOT EXISTS: repeated imports draw no numbers); `metric` rows by whoever
needs an id for a name (`sensorthings.ensure_ids`), each the next number after the
largest. `metric.id` stays below 100: a Datastream id is `device_id * 100 + metric_id`.

`device_location` keeps each location a device has had, from when: a trigger adds a row
when a device is registered with coordinates or moves. These are the SensorThings
Locations, HistoricalLocations and FeaturesOfInterest. The upgrade records the current
location of every device as held since its registration.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UPGRADE = """
-- Not an identity: a sequence draws numbers also for rows whose transaction rolls back,
-- and metric ids are few (1..99). A new name takes the next number after the largest.
CREATE TABLE metric (
    id          smallint PRIMARY KEY CONSTRAINT ck_metric_id CHECK (id BETWEEN 1 AND 99),
    name        text NOT NULL CONSTRAINT uq_metric_name UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE profile (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CONSTRAINT uq_profile_name UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE device_location (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id   integer NOT NULL CONSTRAINT fk_device_location_device REFERENCES device (id),
    latitude    double precision NOT NULL,
    longitude   double precision NOT NULL,
    since       timestamptz NOT NULL
);
CREATE INDEX ix_device_location_device_id_since ON device_location (device_id, since);

INSERT INTO metric (id, name)
SELECT row_number() OVER (ORDER BY metric), metric
FROM (SELECT DISTINCT metric FROM reading_latest) AS m;
INSERT INTO profile (name) SELECT DISTINCT profile FROM device ORDER BY 1;
INSERT INTO device_location (device_id, latitude, longitude, since)
SELECT id, latitude, longitude, created_at FROM device
WHERE latitude IS NOT NULL AND longitude IS NOT NULL
ORDER BY id;

CREATE FUNCTION record_device_profile() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO profile (name)
    SELECT NEW.profile WHERE NOT EXISTS (SELECT 1 FROM profile WHERE name = NEW.profile)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER tr_device_profile AFTER INSERT OR UPDATE OF profile ON device
FOR EACH ROW EXECUTE FUNCTION record_device_profile();

-- A new row only when the coordinates differ from the device's newest ones: an import that
-- repeats a location changes nothing.
CREATE FUNCTION record_device_location() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.latitude IS NOT NULL AND NEW.longitude IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM (
            SELECT l.latitude, l.longitude FROM device_location l
            WHERE l.device_id = NEW.id
            ORDER BY l.since DESC, l.id DESC
            LIMIT 1
        ) AS newest
        WHERE newest.latitude = NEW.latitude AND newest.longitude = NEW.longitude
    ) THEN
        INSERT INTO device_location (device_id, latitude, longitude, since)
        VALUES (NEW.id, NEW.latitude, NEW.longitude, now());
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER tr_device_location AFTER INSERT OR UPDATE OF latitude, longitude ON device
FOR EACH ROW EXECUTE FUNCTION record_device_location();
"""

DOWNGRADE = """
DROP TRIGGER tr_device_location ON device;
DROP FUNCTION record_device_location();
DROP TRIGGER tr_device_profile ON device;
DROP FUNCTION record_device_profile();
DROP TABLE device_location;
DROP TABLE profile;
DROP TABLE metric;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
