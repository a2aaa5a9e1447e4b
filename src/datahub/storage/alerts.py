"""The alert tables: rules, their per-subject state, alarms, notifications and the delivery log."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from datahub.ops.rule import Kind, Operator, Rule, Scope

# Rules ------------------------------------------------------------------------------------

_RULE_COLUMNS = """
    r.id, r.name, r.kind, r.scope, r.scope_value, r.metric, r.operator, r.open_value,
    r.clear_value, r.hold_s, r.intervals, r.silent_s, r.webhook_url, r.webhook_secret,
    r.email_to, r.cooldown_s, r.enabled
"""


def _rule(row: Sequence[Any]) -> Rule:
    return Rule(
        id=row[0],
        name=row[1],
        kind=Kind(row[2]),
        scope=Scope(row[3]),
        scope_value=row[4],
        metric=row[5],
        operator=Operator(row[6]) if row[6] else None,
        open_value=row[7],
        clear_value=row[8],
        hold_s=row[9],
        intervals=row[10],
        silent_s=row[11],
        webhook_url=row[12],
        webhook_secret=row[13],
        email_to=tuple(row[14]),
        cooldown_s=row[15],
        enabled=row[16],
    )


def _rule_params(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "kind": rule.kind.value,
        "scope": rule.scope.value,
        "scope_value": rule.scope_value,
        "metric": rule.metric,
        "operator": rule.operator.value if rule.operator else None,
        "open_value": rule.open_value,
        "clear_value": rule.clear_value,
        "hold_s": rule.hold_s,
        "intervals": rule.intervals,
        "silent_s": rule.silent_s,
        "webhook_url": rule.webhook_url,
        "webhook_secret": rule.webhook_secret,
        "email_to": list(rule.email_to),
        "cooldown_s": rule.cooldown_s,
        "enabled": rule.enabled,
    }


def insert_rule(conn: psycopg.Connection, *, rule: Rule) -> Rule:
    """Store a new rule; return it with its id."""
    row = conn.execute(
        f"""
        INSERT INTO alert_rule AS r (name, kind, scope, scope_value, metric, operator,
            open_value, clear_value, hold_s, intervals, silent_s, webhook_url, webhook_secret,
            email_to, cooldown_s, enabled)
        VALUES (%(name)s, %(kind)s, %(scope)s, %(scope_value)s, %(metric)s, %(operator)s,
            %(open_value)s, %(clear_value)s, %(hold_s)s, %(intervals)s, %(silent_s)s,
            %(webhook_url)s, %(webhook_secret)s, %(email_to)s, %(cooldown_s)s, %(enabled)s)
        RETURNING {_RULE_COLUMNS}
        """,
        _rule_params(rule),
    ).fetchone()
    assert row is not None
    return _rule(row)


def update_rule(conn: psycopg.Connection, *, rule: Rule) -> Rule:
    """Write every field of a stored rule (by id); return it as stored."""
    row = conn.execute(
        f"""
        UPDATE alert_rule AS r SET kind = %(kind)s, scope = %(scope)s,
            scope_value = %(scope_value)s, metric = %(metric)s, operator = %(operator)s,
            open_value = %(open_value)s, clear_value = %(clear_value)s, hold_s = %(hold_s)s,
            intervals = %(intervals)s, silent_s = %(silent_s)s, webhook_url = %(webhook_url)s,
            webhook_secret = %(webhook_secret)s, email_to = %(email_to)s,
            cooldown_s = %(cooldown_s)s, enabled = %(enabled)s, updated_at = now()
        WHERE r.id = %(id)s
        RETURNING {_RULE_COLUMNS}
        """,
        _rule_params(rule),
    ).fetchone()
    assert row is not None
    return _rule(row)


def delete_rule(conn: psycopg.Connection, *, rule_id: int) -> None:
    """Delete a rule; its state, alarms and notifications go with it."""
    conn.execute("DELETE FROM alert_rule WHERE id = %s", (rule_id,))


def get_rule(conn: psycopg.Connection, *, name: str) -> Rule | None:
    row = conn.execute(
        f"SELECT {_RULE_COLUMNS} FROM alert_rule r WHERE r.name = %s", (name,)
    ).fetchone()
    return _rule(row) if row is not None else None


def list_rules(conn: psycopg.Connection, *, enabled_only: bool = False) -> list[Rule]:
    """List the rules by name."""
    rows = conn.execute(
        f"SELECT {_RULE_COLUMNS} FROM alert_rule r WHERE r.enabled OR NOT %s ORDER BY r.name",
        (enabled_only,),
    ).fetchall()
    return [_rule(row) for row in rows]


def scope_exists(conn: psycopg.Connection, *, scope: str, value: str) -> bool:
    """Tell whether a device, dataset or supplier named by a rule's scope is registered."""
    table, column = {
        "device": ("device", "dev_eui"),
        "dataset": ("dataset", "slug"),
        "supplier": ("supplier", "slug"),
    }[scope]
    row = conn.execute(f"SELECT 1 FROM {table} WHERE {column} = %s", (value,)).fetchone()
    return row is not None


# Devices in a rule's scope: `r` a rule, `d` a device with its supplier `s` and dataset `ds`.
_IN_SCOPE = """
    (r.scope = 'all'
     OR (r.scope = 'device' AND d.dev_eui = r.scope_value)
     OR (r.scope = 'profile' AND d.profile = r.scope_value)
     OR (r.scope = 'dataset' AND ds.slug = r.scope_value)
     OR (r.scope = 'supplier' AND s.slug = r.scope_value)
     OR (r.scope = 'city' AND d.city = r.scope_value))
"""
_DEVICE_TABLES = """
    device d JOIN supplier s ON s.id = d.supplier_id JOIN dataset ds ON ds.id = d.dataset_id
"""


def select_rule_devices(
    conn: psycopg.Connection, *, kinds: Sequence[Kind]
) -> list[tuple[int, int, str]]:
    """Return (rule id, device id, DevEUI) for every enabled rule of these kinds and device
    in its scope."""
    rows = conn.execute(
        f"""
        SELECT r.id, d.id, d.dev_eui
        FROM alert_rule r CROSS JOIN {_DEVICE_TABLES}
        WHERE r.enabled AND r.kind = ANY(%s::text[]) AND {_IN_SCOPE}
        """,
        ([k.value for k in kinds],),
    ).fetchall()
    return [(int(r), int(d), str(e)) for r, d, e in rows]


@dataclass(frozen=True, slots=True)
class SilenceCandidate:
    """A device in a silence rule's scope, with what its expected interval comes from."""

    rule_id: int
    device_id: int
    dev_eui: str
    profile: str
    last_seen_at: datetime | None
    learned_interval_s: int | None


def select_silence_candidates(conn: psycopg.Connection) -> list[SilenceCandidate]:
    """Return every device in the scope of an enabled silence rule."""
    rows = conn.execute(
        f"""
        SELECT r.id, d.id, d.dev_eui, d.profile, d.last_seen_at, h.learned_interval_s
        FROM alert_rule r CROSS JOIN {_DEVICE_TABLES}
        LEFT JOIN device_health h ON h.device_id = d.id
        WHERE r.enabled AND r.kind = 'silence' AND {_IN_SCOPE}
        """
    ).fetchall()
    return [SilenceCandidate(*row) for row in rows]


# State and alarms -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubjectState:
    """A (rule, subject) pair's state, with its open or acknowledged alarm if any."""

    rule_id: int
    subject: str
    last_time: datetime | None
    breach_since: datetime | None
    alarm_id: int | None


def lock_states(
    conn: psycopg.Connection, *, keys: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], SubjectState]:
    """Create missing states of (rule id, subject) pairs, lock them in key order, and return
    them with their active alarms. Concurrent evaluators of one pair wait for each other."""
    if not keys:
        return {}
    ordered = sorted(set(keys))
    params = ([r for r, _ in ordered], [s for _, s in ordered])
    conn.execute(
        """
        INSERT INTO alert_state (rule_id, subject)
        SELECT * FROM unnest(%s::int[], %s::text[])
        ON CONFLICT DO NOTHING
        """,
        params,
    )
    rows = conn.execute(
        """
        WITH locked AS (
            SELECT st.rule_id, st.subject, st.last_time, st.breach_since
            FROM alert_state st
            JOIN unnest(%s::int[], %s::text[]) AS k (rule_id, subject)
              ON k.rule_id = st.rule_id AND k.subject = st.subject
            ORDER BY st.rule_id, st.subject
            FOR UPDATE OF st
        )
        SELECT l.rule_id, l.subject, l.last_time, l.breach_since, a.id
        FROM locked l
        LEFT JOIN alarm a ON a.rule_id = l.rule_id AND a.subject = l.subject
                         AND a.state <> 'cleared'
        """,
        params,
    ).fetchall()
    return {(r[0], r[1]): SubjectState(*r) for r in rows}


def update_states(conn: psycopg.Connection, *, states: Sequence[SubjectState]) -> None:
    if not states:
        return
    conn.execute(
        """
        UPDATE alert_state st SET last_time = v.last_time, breach_since = v.breach_since
        FROM unnest(%s::int[], %s::text[], %s::timestamptz[], %s::timestamptz[])
             AS v (rule_id, subject, last_time, breach_since)
        WHERE st.rule_id = v.rule_id AND st.subject = v.subject
        """,
        (
            [s.rule_id for s in states],
            [s.subject for s in states],
            [s.last_time for s in states],
            [s.breach_since for s in states],
        ),
    )


def select_active_alarms(
    conn: psycopg.Connection, *, rule_ids: Sequence[int]
) -> dict[tuple[int, str], int]:
    """Return (rule id, subject) -> alarm id of the open or acknowledged alarms, locked."""
    rows = conn.execute(
        """
        SELECT rule_id, subject, id FROM alarm
        WHERE rule_id = ANY(%s::int[]) AND state <> 'cleared'
        ORDER BY id
        FOR UPDATE
        """,
        (list(rule_ids),),
    ).fetchall()
    return {(r, s): int(i) for r, s, i in rows}


def last_notified_open(conn: psycopg.Connection, *, rule_id: int, subject: str) -> datetime | None:
    """When the rule's newest notified alarm for this subject opened, if any."""
    row = conn.execute(
        """
        SELECT max(opened_at) FROM alarm
        WHERE rule_id = %s AND subject = %s AND notified
        """,
        (rule_id, subject),
    ).fetchone()
    return row[0] if row else None


def insert_alarm(
    conn: psycopg.Connection,
    *,
    rule_id: int,
    subject: str,
    device_id: int | None,
    opened_at: datetime,
    value: float | None,
    notified: bool,
    detail: str,
) -> int:
    """Open an alarm; return its id."""
    row = conn.execute(
        """
        INSERT INTO alarm (rule_id, subject, device_id, state, opened_at, open_value, notified,
                           detail)
        VALUES (%s, %s, %s, 'open', %s, %s, %s, %s)
        RETURNING id
        """,
        (rule_id, subject, device_id, opened_at, value, notified, detail),
    ).fetchone()
    assert row is not None
    return int(row[0])


def clear_alarm(
    conn: psycopg.Connection, *, alarm_id: int, cleared_at: datetime, value: float | None
) -> bool:
    """Clear an open or acknowledged alarm; tell whether it was notified when it opened."""
    row = conn.execute(
        """
        UPDATE alarm SET state = 'cleared', cleared_at = %s, clear_value = %s
        WHERE id = %s AND state <> 'cleared'
        RETURNING notified
        """,
        (cleared_at, value, alarm_id),
    ).fetchone()
    return bool(row and row[0])


def acknowledge_alarm(conn: psycopg.Connection, *, alarm_id: int, at: datetime, by: str) -> bool:
    """Acknowledge an open alarm; tell whether it was open."""
    cur = conn.execute(
        """
        UPDATE alarm SET state = 'acknowledged', acknowledged_at = %s, acknowledged_by = %s
        WHERE id = %s AND state = 'open'
        """,
        (at, by, alarm_id),
    )
    return cur.rowcount == 1


@dataclass(frozen=True, slots=True)
class AlarmRow:
    id: int
    rule_name: str
    rule_kind: str
    subject: str
    dev_eui: str | None
    device_name: str | None
    city: str | None
    supplier_slug: str | None
    state: str
    opened_at: datetime
    open_value: float | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    cleared_at: datetime | None
    clear_value: float | None
    notified: bool
    detail: str


def list_alarms(
    conn: psycopg.Connection,
    *,
    states: Sequence[str],
    supplier_id: int | None = None,
    rule: str | None = None,
    alarm_id: int | None = None,
    before: int | None = None,
    limit: int = 1000,
) -> list[AlarmRow]:
    """List alarms newest first; `supplier_id` keeps those of one supplier's devices."""
    rows = conn.execute(
        """
        SELECT a.id, r.name, r.kind, a.subject, d.dev_eui, d.name, d.city, s.slug, a.state,
               a.opened_at, a.open_value, a.acknowledged_at, a.acknowledged_by, a.cleared_at,
               a.clear_value, a.notified, a.detail
        FROM alarm a
        JOIN alert_rule r ON r.id = a.rule_id
        LEFT JOIN device d ON d.id = a.device_id
        LEFT JOIN supplier s ON s.id = d.supplier_id
        WHERE a.state = ANY(%(states)s::text[])
          AND (%(supplier_id)s::int IS NULL OR d.supplier_id = %(supplier_id)s)
          AND (%(rule)s::text IS NULL OR r.name = %(rule)s)
          AND (%(alarm_id)s::bigint IS NULL OR a.id = %(alarm_id)s)
          AND (%(before)s::bigint IS NULL OR a.id < %(before)s)
        ORDER BY a.id DESC
        LIMIT %(limit)s
        """,
        {
            "states": list(states),
            "supplier_id": supplier_id,
            "rule": rule,
            "alarm_id": alarm_id,
            "before": before,
            "limit": limit,
        },
    ).fetchall()
    return [AlarmRow(*row) for row in rows]


def count_active_alarms_by_rule(conn: psycopg.Connection) -> dict[tuple[str, str], int]:
    """Count open and acknowledged alarms by (rule name, state); every rule appears."""
    rows = conn.execute(
        """
        SELECT r.name, st.state, count(a.id)
        FROM alert_rule r
        CROSS JOIN (VALUES ('open'), ('acknowledged')) AS st (state)
        LEFT JOIN alarm a ON a.rule_id = r.id AND a.state = st.state
        GROUP BY 1, 2
        """
    ).fetchall()
    return {(name, state): int(n) for name, state, n in rows}


# Notifications ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewNotification:
    alarm_id: int
    event: str  # open | cleared
    channel: str  # webhook | email
    target: str
    payload: dict[str, Any]
    suppressed: bool


def insert_notifications(
    conn: psycopg.Connection, *, rows: Sequence[NewNotification], now: datetime
) -> list[uuid.UUID]:
    """Queue notifications (suppressed ones are only logged); return their keys."""
    keys = [uuid.uuid4() for _ in rows]
    if not rows:
        return keys
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO notification (idempotency_key, alarm_id, event, channel, target,
                                      payload, status, next_attempt_at, created_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            [
                (
                    key,
                    n.alarm_id,
                    n.event,
                    n.channel,
                    n.target,
                    Jsonb({**n.payload, "idempotency_key": str(key)}),
                    "suppressed" if n.suppressed else "pending",
                    now,
                    now,
                )
                for key, n in zip(keys, rows, strict=True)
            ],
        )
    return keys


@dataclass(frozen=True, slots=True)
class PendingNotification:
    id: int
    idempotency_key: uuid.UUID
    rule_id: int
    event: str
    channel: str
    target: str
    payload: dict[str, Any]
    attempts: int
    webhook_secret: str | None


def claim_pending(conn: psycopg.Connection, *, now: datetime) -> PendingNotification | None:
    """Lock the next notification due, skipping those another worker holds."""
    row = conn.execute(
        """
        SELECT n.id, n.idempotency_key, a.rule_id, n.event, n.channel, n.target, n.payload,
               n.attempts, r.webhook_secret
        FROM notification n
        JOIN alarm a ON a.id = n.alarm_id
        JOIN alert_rule r ON r.id = a.rule_id
        WHERE n.status = 'pending' AND n.next_attempt_at <= %s
        ORDER BY n.next_attempt_at, n.id
        LIMIT 1
        FOR UPDATE OF n SKIP LOCKED
        """,
        (now,),
    ).fetchone()
    return PendingNotification(*row) if row is not None else None


def record_attempt(
    conn: psycopg.Connection,
    *,
    notification_id: int,
    at: datetime,
    ok: bool,
    detail: str,
    status: str,
    next_attempt_at: datetime | None,
) -> None:
    """Log one delivery attempt and move the notification to `status`."""
    conn.execute(
        """
        INSERT INTO notification_attempt (notification_id, attempted_at, ok, detail)
        VALUES (%s, %s, %s, %s)
        """,
        (notification_id, at, ok, detail),
    )
    conn.execute(
        """
        UPDATE notification SET
            status = %s, attempts = attempts + 1, last_error = CASE WHEN %s THEN NULL ELSE %s END,
            next_attempt_at = coalesce(%s, next_attempt_at),
            sent_at = CASE WHEN %s THEN %s ELSE sent_at END
        WHERE id = %s
        """,
        (status, ok, detail, next_attempt_at, ok, at, notification_id),
    )


@dataclass(frozen=True, slots=True)
class NotificationRow:
    id: int
    idempotency_key: uuid.UUID
    alarm_id: int
    rule_name: str
    subject: str
    event: str
    channel: str
    target: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


def list_notifications(
    conn: psycopg.Connection,
    *,
    rule: str | None = None,
    status: str | None = None,
    alarm_id: int | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[NotificationRow]:
    """List notifications newest first: the delivery log."""
    rows = conn.execute(
        """
        SELECT n.id, n.idempotency_key, n.alarm_id, r.name, a.subject, n.event, n.channel,
               n.target, n.status, n.attempts, n.last_error, n.created_at, n.sent_at
        FROM notification n
        JOIN alarm a ON a.id = n.alarm_id
        JOIN alert_rule r ON r.id = a.rule_id
        WHERE (%(rule)s::text IS NULL OR r.name = %(rule)s)
          AND (%(status)s::text IS NULL OR n.status = %(status)s)
          AND (%(alarm_id)s::bigint IS NULL OR n.alarm_id = %(alarm_id)s)
          AND (%(before)s::bigint IS NULL OR n.id < %(before)s)
        ORDER BY n.id DESC
        LIMIT %(limit)s
        """,
        {"rule": rule, "status": status, "alarm_id": alarm_id, "before": before, "limit": limit},
    ).fetchall()
    return [NotificationRow(*row) for row in rows]
