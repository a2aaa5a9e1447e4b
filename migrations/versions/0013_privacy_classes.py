"""Privacy classes of datasets and devices, and the key of the devices' public ids.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

A dataset gains its privacy class (datahub/privacy.py): `public_infrastructure`, the
default, keeps what every dataset showed before; `private_owner` and `personal` protect
its devices from callers without a grant. A device may override its dataset's class
(NULL: the dataset's).

`privacy_key` holds the one key of the public ids, as HMAC's inner and outer padded
keys (RFC 2104), so that SQL computes an HMAC-SHA-256 with the built-in sha256(). It is
drawn at random here, once; `datahub migrate` replaces it when `privacy.public_id_key`
is set. The downgrade drops it: public ids handed out before are then lost.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

CLASSES = "('public_infrastructure', 'private_owner', 'personal')"

UPGRADE = f"""
ALTER TABLE dataset
    ADD COLUMN privacy text NOT NULL DEFAULT 'public_infrastructure'
        CONSTRAINT ck_dataset_privacy CHECK (privacy IN {CLASSES});

ALTER TABLE device
    ADD COLUMN privacy text
        CONSTRAINT ck_device_privacy CHECK (privacy IN {CLASSES});

CREATE TABLE privacy_key (
    id          smallint NOT NULL DEFAULT 1 CONSTRAINT ck_privacy_key_one CHECK (id = 1),
    inner_pad   bytea NOT NULL CONSTRAINT ck_privacy_key_inner CHECK (length(inner_pad) = 64),
    outer_pad   bytea NOT NULL CONSTRAINT ck_privacy_key_outer CHECK (length(outer_pad) = 64),
    set_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_privacy_key PRIMARY KEY (id)
);
"""

DOWNGRADE = """
DROP TABLE privacy_key;
ALTER TABLE device DROP COLUMN privacy;
ALTER TABLE dataset DROP COLUMN privacy;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    # RFC 2104 with a 32-byte key: the key padded with zeros to SHA-256's 64-byte block,
    # XORed with 0x36 (inner) and 0x5c (outer); datahub.privacy.hmac_pads does the same.
    key = os.urandom(32).ljust(64, b"\0")
    inner, outer = bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)
    op.get_bind().execute(
        sa.text("INSERT INTO privacy_key (inner_pad, outer_pad) VALUES (:inner, :outer)"),
        {"inner": inner, "outer": outer},
    )


def downgrade() -> None:
    op.execute(DOWNGRADE)
