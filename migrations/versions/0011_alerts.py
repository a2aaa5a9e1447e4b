"""Alerts: rules, their per-subject state, alarms, and notifications with a delivery log.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

Notifications are a transactional outbox: the ingest evaluates the rules for a batch's
new readings in the batch's own transaction, so the alarm's transition and its
notification rows commit together with the readings or not at all. A delivery worker
sends pending rows at least once, each with the idempotency key it was created with; a
batch rolled back and delivered again is evaluated again and yields its transition once.
One alarm per rule and subject is open or acknowledged at a time (a partial unique index).
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE alert_rule (
    id             integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text NOT NULL CONSTRAINT uq_alert_rule_name UNIQUE
                   CONSTRAINT ck_alert_rule_name CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    kind           text NOT NULL CONSTRAINT ck_alert_rule_kind
                   CHECK (kind IN ('threshold', 'battery', 'silence', 'gateway_silent')),
    scope          text NOT NULL CONSTRAINT ck_alert_rule_scope
                   CHECK (scope IN ('all', 'device', 'profile', 'dataset', 'supplier', 'city',
                                    'gateway')),
    scope_value    text,
    metric         text,
    operator       text CONSTRAINT ck_alert_rule_operator CHECK (operator IN ('above', 'below')),
    open_value     double precision,
    clear_value    double precision,
    hold_s         integer NOT NULL DEFAULT 0 CONSTRAINT ck_alert_rule_hold CHECK (hold_s >= 0),
    intervals      double precision CONSTRAINT ck_alert_rule_intervals CHECK (intervals > 0),
    silent_s       integer CONSTRAINT ck_alert_rule_silent CHECK (silent_s > 0),
    webhook_url    text,
    webhook_secret text,
    email_to       text[] NOT NULL DEFAULT '{}',
    cooldown_s     integer NOT NULL DEFAULT 0
                   CONSTRAINT ck_alert_rule_cooldown CHECK (cooldown_s >= 0),
    enabled        boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Where each (rule, subject) stands between alarms: the newest reading evaluated, and
-- since when the threshold has been crossed without a break (for the hold duration).
CREATE TABLE alert_state (
    rule_id       integer NOT NULL
                  CONSTRAINT fk_alert_state_rule REFERENCES alert_rule (id) ON DELETE CASCADE,
    subject       text NOT NULL,
    last_time     timestamptz,
    breach_since  timestamptz,
    CONSTRAINT pk_alert_state PRIMARY KEY (rule_id, subject)
);

CREATE TABLE alarm (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id          integer NOT NULL
                     CONSTRAINT fk_alarm_rule REFERENCES alert_rule (id) ON DELETE CASCADE,
    subject          text NOT NULL,
    device_id        integer CONSTRAINT fk_alarm_device REFERENCES device (id) ON DELETE CASCADE,
    state            text NOT NULL
                     CONSTRAINT ck_alarm_state CHECK (state IN ('open', 'acknowledged', 'cleared')),
    opened_at        timestamptz NOT NULL,
    open_value       double precision,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    cleared_at       timestamptz,
    clear_value      double precision,
    -- false: opened within the rule's cooldown, so neither transition is notified
    notified         boolean NOT NULL,
    detail           text NOT NULL
);
CREATE UNIQUE INDEX uq_alarm_active ON alarm (rule_id, subject) WHERE state <> 'cleared';
CREATE INDEX ix_alarm_rule_id_subject_opened_at ON alarm (rule_id, subject, opened_at);
CREATE INDEX ix_alarm_state ON alarm (state) WHERE state <> 'cleared';

CREATE TABLE notification (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key  uuid NOT NULL CONSTRAINT uq_notification_idempotency_key UNIQUE,
    alarm_id         bigint NOT NULL
                     CONSTRAINT fk_notification_alarm REFERENCES alarm (id) ON DELETE CASCADE,
    event            text NOT NULL CONSTRAINT ck_notification_event
                     CHECK (event IN ('open', 'cleared')),
    channel          text NOT NULL CONSTRAINT ck_notification_channel
                     CHECK (channel IN ('webhook', 'email')),
    target           text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL CONSTRAINT ck_notification_status
                     CHECK (status IN ('pending', 'sent', 'failed', 'suppressed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX ix_notification_pending ON notification (next_attempt_at) WHERE status = 'pending';
CREATE INDEX ix_notification_alarm_id ON notification (alarm_id);

-- The delivery log: every attempt to send a notification and how it went.
CREATE TABLE notification_attempt (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id  bigint NOT NULL CONSTRAINT fk_notification_attempt_notification
                     REFERENCES notification (id) ON DELETE CASCADE,
    attempted_at     timestamptz NOT NULL,
    ok               boolean NOT NULL,
    detail           text NOT NULL
);
CREATE INDEX ix_notification_attempt_notification_id ON notification_attempt (notification_id);
"""

DOWNGRADE = """
DROP TABLE notification_attempt;
DROP TABLE notification;
DROP TABLE alarm;
DROP TABLE alert_state;
DROP TABLE alert_rule;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
