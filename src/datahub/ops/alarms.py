"""Alarm transitions: the one place an alarm opens or clears and its notifications are queued.

Both the ingest's evaluation of readings (ops/engine.py) and the scheduler of silence rules
(ops/scheduler.py) call `apply`, in the transaction that made the decision, so the
transition and its notification rows commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from datahub.ops.rule import Rule
from datahub.storage import alerts
from datahub.storage.alerts import NewNotification


@dataclass(frozen=True, slots=True)
class Transition:
    """An alarm of `rule` about `subject` opens (alarm_id None) or clears (alarm_id given)."""

    rule: Rule
    subject: str  # a DevEUI, or a gateway id
    device_id: int | None
    event: str  # open | cleared
    at: datetime
    value: float | None
    detail: str
    alarm_id: int | None = None


def apply(conn: psycopg.Connection, transitions: Sequence[Transition], *, now: datetime) -> int:
    """Write the transitions and queue a notification per channel of each; return how many."""
    queued: list[NewNotification] = []
    for t in transitions:
        if t.event == "open":
            last = alerts.last_notified_open(conn, rule_id=t.rule.id, subject=t.subject)
            cooling = (
                t.rule.cooldown_s > 0
                and last is not None
                and t.at - last < timedelta(seconds=t.rule.cooldown_s)
            )
            alarm_id = alerts.insert_alarm(
                conn,
                rule_id=t.rule.id,
                subject=t.subject,
                device_id=t.device_id,
                opened_at=t.at,
                value=t.value,
                notified=not cooling,
                detail=t.detail,
            )
            notified = not cooling
        else:
            assert t.alarm_id is not None
            alarm_id = t.alarm_id
            notified = alerts.clear_alarm(conn, alarm_id=alarm_id, cleared_at=t.at, value=t.value)
        payload = _payload(t, alarm_id)
        if t.rule.webhook_url:
            queued.append(
                NewNotification(
                    alarm_id, t.event, "webhook", t.rule.webhook_url, payload, not notified
                )
            )
        if t.rule.email_to:
            queued.append(
                NewNotification(
                    alarm_id, t.event, "email", ", ".join(t.rule.email_to), payload, not notified
                )
            )
    alerts.insert_notifications(conn, rows=queued, now=now)
    return len(transitions)


def _payload(t: Transition, alarm_id: int) -> dict[str, Any]:
    """The notification's JSON: the same bytes for every attempt to deliver it."""
    rule = t.rule
    return {
        "event": t.event,
        "alarm": {
            "id": alarm_id,
            "subject": t.subject,
            "subject_kind": "gateway" if t.device_id is None else "device",
            "at": t.at.isoformat(),
            "value": t.value,
            "detail": t.detail,
        },
        "rule": {
            "name": rule.name,
            "kind": rule.kind.value,
            "scope": rule.scope.value,
            "scope_value": rule.scope_value,
            "metric": rule.metric,
            "operator": rule.operator.value if rule.operator else None,
            "open_value": rule.open_value,
            "clear_value": rule.clear_value,
        },
    }
