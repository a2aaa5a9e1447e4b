"""Fair share, exact: every consumer's month counted from the ledger; replays answered
from the stored answer.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-14

`quota_usage` held the observations of consumers with a monthly quota only, from the
moment a quota was set: a quota set mid-month ignored the month's earlier use. The API
now counts every consumer's usage per calendar month (UTC), quota or not, in the
statement that writes it, so the counter always equals the month's ledger; this
revision sets every counter to its month's ledger once, from `usage`.

Stop the API while this runs (docs/operations.md, Upgrading): a previous version still
serving afterwards would not count the consumers without a quota (setting a quota
counts its month again, so nothing is lost, but until then the counter is short).

An idempotency key now keeps the answer its request got (status, headers, body), so that a
replay gets that answer again instead of new data served unmetered, and keys expire
(`fairshare.idempotency_keys_kept_s`). The claims made before hold no answer to give and
are deleted: a retry across the upgrade is counted as a new request.

A supplier's own use of its own datasets (a consumer acting for the supplier reading
them) is recorded as such (`usage.own_use`), shown in the supplier's statement and never
invoiced. This revision marks the open usage (of no closed period) that is own use by
the consumers' suppliers now; closed usage and closed periods stay as they are.

Downgrade: `own_use` goes (a period closed meanwhile keeps its result); the stored
answers and the index go; the counters stay as they are, equal to the ledger; the
previous version keeps adding to those of consumers with a quota.
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
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
ALTER TABLE usage ADD COLUMN own_use boolean NOT NULL DEFAULT false;
UPDATE usage u SET own_use = true FROM consumer c
WHERE u.period IS NULL AND c.id = u.consumer_id AND c.supplier_id = u.supplier_id;
DELETE FROM idempotency_key;
ALTER TABLE idempotency_key
    ADD COLUMN status smallint NOT NULL,
    ADD COLUMN headers jsonb NOT NULL,
    ADD COLUMN body bytea NOT NULL;
-- The API prunes expired keys by their age.
CREATE INDEX ix_idempotency_key_created_at ON idempotency_key (created_at);
"""

DOWNGRADE = """
ALTER TABLE usage DROP COLUMN own_use;
DROP INDEX ix_idempotency_key_created_at;
ALTER TABLE idempotency_key DROP COLUMN status, DROP COLUMN headers, DROP COLUMN body;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
