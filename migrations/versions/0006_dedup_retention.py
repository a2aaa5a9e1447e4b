"""An index on the dedup keys' time, so that keys past the ingest's age limit can be pruned.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

`uplink_dedup` holds one key per uplink ever stored and grew without bound. The ingest
refuses uplinks older than `ingest.max_age_days` before it claims their keys, so a key
older than that can never match again; the ingest's retention thread deletes such keys
(ingest/retention.py), oldest first, and this index is how it finds them. Keys arrive in
about time order, so the index grows at its right edge.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX ix_uplink_dedup_received_at ON uplink_dedup (received_at)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_uplink_dedup_received_at")
