"""Dedup keys that tell a frame-counter reset from a redelivery, and a copy with other
content; dead letters that keep a bounded head of their message.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10

The ttn-v3 dedup key of an uplink with a session key id was (DevEUI, session key id,
f_cnt). An ABP device whose frame counter resets keeps its session key id, so its uplinks
after a reset took the keys of earlier ones and were dropped as duplicates. The key now
also holds the network server's reception time (ingest/envelope.py). The keys stored so
far stay valid: `uplink_dedup_legacy` records until when an uplink can have been stored
under the previous key (the newest key's received_at, or now if later), and the ingest
checks the previous key of a ttn-v3 uplink received until then, with its received_at, so
that a redelivery of an uplink stored before the upgrade is still a duplicate. No row: the
table `uplink_dedup` was empty, nothing was stored under the previous keys.

Each key is kept with a digest of its uplink's content (DevEUI, f_port, f_cnt, payload), so
that a message under a taken key is told to be a redelivery or another uplink (a
`dedup_conflict` dead letter) by one index probe of `uplink_dedup`, without reading the
`uplink` hypertable. Keys recorded before have none (NULL; filling them would rewrite the
whole table): for those the ingest reads the stored uplink instead.

The ingest must be stopped while this runs (docs/operations.md, Upgrading): a previous
version still running afterwards would store keys the record does not cover.

`dead_letter` keeps the first `ingest.dead_letter_head_bytes` of a rejected message
(`body`) with the whole message's length (`body_length`) and SHA-256 (`body_sha256`): a
flood of large messages stored whole could fill the database. Rows stored before keep
their whole body, which nothing could recompute, with its length and digest computed here;
docs/operations.md shows how to trim them once their tails are not needed.

Downgrade: the legacy table, the digests and the two dead-letter columns go. Bodies stored
as heads stay heads: their tails were never stored. Uplinks stored since the upgrade keep
their new keys, which the previous version does not compute: a redelivery of such a ttn-v3
uplink (a broker's unacknowledged QoS 1 message, an overlapping back-fill) would be stored a
second time by it.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE uplink_dedup ADD COLUMN content_digest bytea;

ALTER TABLE dead_letter ADD COLUMN body_length bigint, ADD COLUMN body_sha256 bytea;
UPDATE dead_letter SET body_length = octet_length(body), body_sha256 = sha256(body);
ALTER TABLE dead_letter ALTER COLUMN body_length SET NOT NULL,
                        ALTER COLUMN body_sha256 SET NOT NULL;

CREATE TABLE uplink_dedup_legacy (
    id              smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    received_until  timestamptz NOT NULL
);
INSERT INTO uplink_dedup_legacy (received_until)
SELECT greatest(max(received_at), now()) FROM uplink_dedup HAVING count(*) > 0;
"""

DOWNGRADE = """
ALTER TABLE dead_letter DROP COLUMN body_sha256, DROP COLUMN body_length;
DROP TABLE uplink_dedup_legacy;
ALTER TABLE uplink_dedup DROP COLUMN content_digest;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
