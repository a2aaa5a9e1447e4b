"""Fair share, exact: every consumer's month counted from the ledger.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-14

`quota_usage` held the observations of consumers with a monthly quota only, from the
moment a quota was set: a quota set mid-month ignored the month's earlier use. The API
now counts every consumer's usage per calendar month (UTC), quota or not, in the
statement that writes it, so the counter always equals the month's ledger; this
revision sets every counter to its month's ledger once, from `usage`.

Stop the API while this runs (docs/operations.md, Upgrading): a previous version still
serving afterwards would not count the consumers without a quota (setting a quota
counts its month again, so nothing is lost, but until then the counter is short).

Downgrade: the counters stay as they are, equal to the ledger; the previous version
keeps adding to those of consumers with a quota.
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UPGRADE = """
DELETE FROM quota_usage;
INSERT INTO quota_usage (consumer_id, month, observations)
SELECT consumer_id, date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date,
       sum(observations)
FROM usage
WHERE consumer_id IS NOT NULL
GROUP BY 1, 2;
"""

DOWNGRADE = """
SELECT 1;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
