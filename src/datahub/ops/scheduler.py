"""The scheduler of the rules no reading triggers: silent devices and silent gateways.

Every `alerts.scheduler_s` seconds, under an advisory lock (one ingest worker at a time),
it opens an alarm for each device in a silence rule's scope whose last uplink is more than
`intervals` expected reporting intervals old, and for each gateway in a gateway rule's
scope that has heard nothing for `silent_s`; and clears those heard from again. A device
never heard is not silent: it has not started. The decision and its notifications commit
in one transaction (ops/alarms.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import psycopg

from datahub.ops import alarms
from datahub.ops.alarms import Transition
from datahub.ops.rule import Kind, Rule, Scope
from datahub.storage import alerts, device_health, locks

IntervalOf = Callable[[str], int | None]  # a profile's reporting interval, if known


def run_once(conn: psycopg.Connection, *, now: datetime, interval_of: IntervalOf) -> int:
    """Check every silence and gateway rule once; return the transitions written."""
    with conn.transaction():
        if not locks.try_lock(conn, locks.ALERT_SCHEDULER):
            return 0
        rules = {
            r.id: r
            for r in alerts.list_rules(conn, enabled_only=True)
            if r.kind in (Kind.SILENCE, Kind.GATEWAY_SILENT)
        }
        if not rules:
            return 0
        active = alerts.select_active_alarms(conn, rule_ids=list(rules))
        transitions = _silent_devices(conn, rules, active, now=now, interval_of=interval_of)
        transitions += _silent_gateways(conn, rules, active, now=now)
        return alarms.apply(conn, transitions, now=now)


def _silent_devices(
    conn: psycopg.Connection,
    rules: dict[int, Rule],
    active: dict[tuple[int, str], int],
    *,
    now: datetime,
    interval_of: IntervalOf,
) -> list[Transition]:
    out = []
    for c in alerts.select_silence_candidates(conn):
        rule = rules.get(c.rule_id)
        interval = interval_of(c.profile) or c.learned_interval_s
        if rule is None or rule.intervals is None or c.last_seen_at is None or not interval:
            continue
        limit = timedelta(seconds=rule.intervals * interval)
        silent = now - c.last_seen_at > limit
        alarm_id = active.get((rule.id, c.dev_eui))
        if silent and alarm_id is None:
            detail = (
                f"nothing heard since {c.last_seen_at.isoformat()}"
                f" ({rule.intervals:g} x {interval} s)"
            )
            out.append(Transition(rule, c.dev_eui, c.device_id, "open", now, None, detail))
        elif not silent and alarm_id is not None:
            detail = f"heard again at {c.last_seen_at.isoformat()}"
            out.append(
                Transition(rule, c.dev_eui, c.device_id, "cleared", now, None, detail, alarm_id)
            )
    return out


def _silent_gateways(
    conn: psycopg.Connection,
    rules: dict[int, Rule],
    active: dict[tuple[int, str], int],
    *,
    now: datetime,
) -> list[Transition]:
    gateway_rules = [r for r in rules.values() if r.kind is Kind.GATEWAY_SILENT]
    if not gateway_rules:
        return []
    heard = device_health.select_gateway_last_heard(conn)
    out = []
    for rule in gateway_rules:
        assert rule.silent_s is not None
        for gateway_id, (city, last) in sorted(heard.items()):
            if rule.scope is Scope.CITY and city != rule.scope_value:
                continue
            if rule.scope is Scope.GATEWAY and gateway_id != rule.scope_value:
                continue
            silent = now - last > timedelta(seconds=rule.silent_s)
            alarm_id = active.get((rule.id, gateway_id))
            if silent and alarm_id is None:
                detail = f"heard nothing since {last.isoformat()}"
                out.append(Transition(rule, gateway_id, None, "open", now, None, detail))
            elif not silent and alarm_id is not None:
                detail = f"heard again at {last.isoformat()}"
                out.append(
                    Transition(rule, gateway_id, None, "cleared", now, None, detail, alarm_id)
                )
    return out
