"""The alert engine: threshold and battery rules evaluated over a batch's new readings, in the
batch's own transaction (ops/alarms.py writes what it decides).

The ingest calls `evaluate` with the readings its batch stored. Only readings whose device
and metric some rule watches cost anything: the rules, with the devices in their scope,
are cached for `alerts.rule_cache_s` seconds (a rule change or a newly registered device
takes effect within that), and a batch without such readings runs no statement at all.

A (rule, device) pair is evaluated in reading time: readings no newer than the last one
evaluated for the pair are skipped (a redelivered or late reading changes nothing), so a
batch that is rolled back and stored again yields the same transitions once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import psycopg

from datahub.config import AlertSettings
from datahub.ops import alarms
from datahub.ops.alarms import Transition
from datahub.ops.rule import READING_KINDS, Operator, Rule
from datahub.storage import alerts
from datahub.storage.alerts import SubjectState
from datahub.storage.readings import ReadingRow


@dataclass(frozen=True, slots=True)
class Point:
    time: datetime
    value: float


def threshold_steps(
    rule: Rule, state: SubjectState, points: Sequence[Point]
) -> tuple[SubjectState, list[tuple[str, Point]]]:
    """Run a pair's state over its new readings in time order; return it and the events."""
    active = state.alarm_id is not None
    last_time, since = state.last_time, state.breach_since
    events: list[tuple[str, Point]] = []
    hold = timedelta(seconds=rule.hold_s)
    for p in sorted(points, key=lambda p: p.time):
        if last_time is not None and p.time <= last_time:
            continue
        last_time = p.time
        if active:
            if rule.cleared(p.value):
                events.append(("cleared", p))
                active, since = False, None
        elif rule.breached(p.value):
            since = since or p.time
            if p.time - since >= hold:
                events.append(("open", p))
                active, since = True, None
        else:
            since = None
    return replace(state, last_time=last_time, breach_since=since), events


class AlertEngine:
    """Evaluate the rules of readings; one per ingest pipeline."""

    def __init__(
        self, settings: AlertSettings, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = settings.rule_cache_s
        self._monotonic = monotonic
        self._loaded = float("-inf")
        self._rules: dict[int, Rule] = {}
        self._watching: dict[tuple[int, str], list[int]] = {}  # (device id, metric) -> rule ids
        self._dev_euis: dict[int, str] = {}

    def refresh_if_due(self, conn: psycopg.Connection) -> None:
        """Reload the rules and the devices in their scope once the cache is stale."""
        if self._monotonic() - self._loaded < self._ttl:
            return
        rules = {
            r.id: r for r in alerts.list_rules(conn, enabled_only=True) if r.kind in READING_KINDS
        }
        watching: dict[tuple[int, str], list[int]] = {}
        dev_euis: dict[int, str] = {}
        if rules:
            for rule_id, device_id, dev_eui in alerts.select_rule_devices(
                conn, kinds=READING_KINDS
            ):
                rule = rules.get(rule_id)
                if rule is not None and rule.metric is not None:
                    watching.setdefault((device_id, rule.metric), []).append(rule_id)
                    dev_euis[device_id] = dev_eui
        self._rules, self._watching, self._dev_euis = rules, watching, dev_euis
        self._loaded = self._monotonic()

    def evaluate(
        self, conn: psycopg.Connection, readings: Sequence[ReadingRow], *, now: datetime
    ) -> int:
        """Evaluate the rules watching these readings; return the transitions written."""
        self.refresh_if_due(conn)
        if not self._watching:
            return 0
        points: dict[tuple[int, int], list[Point]] = {}
        for r in readings:
            for rule_id in self._watching.get((r.device_id, r.metric), ()):
                points.setdefault((rule_id, r.device_id), []).append(Point(r.time, r.value))
        if not points:
            return 0
        states = alerts.lock_states(
            conn, keys=[(rule_id, self._dev_euis[d]) for rule_id, d in points]
        )
        changed: list[SubjectState] = []
        transitions: list[Transition] = []
        for (rule_id, device_id), pair_points in sorted(points.items()):
            rule = self._rules[rule_id]
            subject = self._dev_euis[device_id]
            state = states[rule_id, subject]
            new_state, events = threshold_steps(rule, state, pair_points)
            if new_state != state:
                changed.append(new_state)
            alarm_id = state.alarm_id
            for event, p in events:
                transitions.append(
                    Transition(
                        rule=rule,
                        subject=subject,
                        device_id=device_id,
                        event=event,
                        at=p.time,
                        value=p.value,
                        detail=_detail(rule, event, p.value),
                        alarm_id=alarm_id if event == "cleared" else None,
                    )
                )
                if event == "open":
                    alarm_id = None  # known once written: a clear in the same batch looks it up
        alerts.update_states(conn, states=changed)
        return self._apply(conn, transitions, now=now)

    def _apply(
        self, conn: psycopg.Connection, transitions: list[Transition], *, now: datetime
    ) -> int:
        written = 0
        for t in transitions:
            if t.event == "cleared" and t.alarm_id is None:
                # Opened earlier in this batch: its id is known now.
                active = alerts.select_active_alarms(conn, rule_ids=[t.rule.id])
                t = replace(t, alarm_id=active[t.rule.id, t.subject])
            written += alarms.apply(conn, [t], now=now)
        return written


def _detail(rule: Rule, event: str, value: float) -> str:
    """Say in words why the alarm opened or cleared: `fill_level 85 above 80 for 600 s`."""
    if event == "open":
        held = f" for {rule.hold_s} s" if rule.hold_s else ""
        return f"{rule.metric} {value:g} {rule.operator} {rule.open_value:g}{held}"
    side = "at or below" if rule.operator is Operator.ABOVE else "at or above"
    return f"{rule.metric} {value:g} back {side} {rule.clear_value:g}"
