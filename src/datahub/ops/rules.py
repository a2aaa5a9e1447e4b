"""Alert rules: what each kind means, how a rule is checked, and the one place each is
created, changed or deleted (so that an audit record can be added in one place).

Kinds
    threshold       a normalized metric crosses `open_value` (`operator` above or below) in
                    every reading for at least `hold_s` seconds of reading time: the alarm
                    opens; it clears at the first reading at or beyond `clear_value` back on
                    the other side (hysteresis: above 80 opens, at or below 60 clears).
    battery         a threshold below `open_value` on `battery` (%) or `battery_voltage`.
    silence         a device has sent nothing for `intervals` of its expected reporting
                    intervals (ops/health.py); checked by the scheduler, cleared when heard.
    gateway_silent  a gateway has heard no registered device for `silent_s` seconds.
Scopes
    all, or one device (DevEUI), profile, dataset, supplier or city; gateway rules take
    all, a city or one gateway id.
Channels
    a webhook (JSON, HMAC-SHA256 signed with `webhook_secret`) and/or e-mail to `email_to`
    through the configured mail server. `cooldown_s`: an alarm opened within that time of
    the rule's previous notified alarm for the same subject is recorded, not notified.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import psycopg

import decoders
from datahub import audit
from datahub.config import AlertSettings
from datahub.domain import City
from datahub.errors import Conflict, NotFound, Unprocessable
from datahub.ops.rule import (
    DEVICE_SCOPES,
    GATEWAY_SCOPES,
    READING_KINDS,
    Kind,
    Operator,
    Rule,
    Scope,
)
from datahub.storage import alerts

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_DEV_EUI = re.compile(r"^[0-9A-Fa-f]{16}$")
_PROFILE = re.compile(r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$")
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
MAX_RECIPIENTS = 20
MAX_URL = 2000


EDITABLE = (
    "kind",
    "scope",
    "scope_value",
    "metric",
    "operator",
    "open_value",
    "clear_value",
    "hold_s",
    "intervals",
    "silent_s",
    "webhook_url",
    "webhook_secret",
    "email_to",
    "cooldown_s",
    "enabled",
)


def check_rule(rule: Rule, *, alerts_settings: AlertSettings) -> Rule:
    """Return the rule with its defaults filled in; Unprocessable says what is wrong."""
    if not NAME.fullmatch(rule.name):
        raise Unprocessable(
            f"rule name {rule.name!r} must be lower-case letters, digits and '-', at most 63"
        )
    rule = _check_kind(rule)
    rule = _check_scope(rule)
    if rule.hold_s < 0 or rule.cooldown_s < 0:
        raise Unprocessable("hold_s and cooldown_s are seconds, 0 or more")
    if rule.webhook_url is not None:
        check_webhook_url(rule.webhook_url)
        if not rule.webhook_secret:
            rule = replace(rule, webhook_secret=secrets.token_urlsafe(32))
    elif rule.webhook_secret is not None:
        rule = replace(rule, webhook_secret=None)
    if len(rule.email_to) > MAX_RECIPIENTS:
        raise Unprocessable(f"at most {MAX_RECIPIENTS} e-mail recipients per rule")
    for address in rule.email_to:
        if not _EMAIL.fullmatch(address):
            raise Unprocessable(f"email_to: {address!r} is not an e-mail address")
    if rule.email_to and alerts_settings.smtp is None:
        raise Unprocessable(
            "e-mail needs a mail server: set alerts.smtp in the settings (docs/configuration.md)"
        )
    return rule


def check_webhook_url(url: str) -> str:
    """Return `url` if a webhook can be posted to it; Unprocessable otherwise."""
    if len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 for c in url):
        raise Unprocessable("webhook_url must be an http(s) URL without spaces or controls")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise Unprocessable(f"webhook_url {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unprocessable(f"webhook_url {url!r} must look like https://host/path")
    return url


def _check_kind(rule: Rule) -> Rule:
    if rule.kind in READING_KINDS:
        if rule.kind is Kind.BATTERY:
            metric = rule.metric or "battery"
            if metric not in ("battery", "battery_voltage"):
                raise Unprocessable("a battery rule watches battery (%) or battery_voltage (V)")
            rule = replace(rule, metric=metric, operator=Operator.BELOW)
        if rule.metric is None or rule.metric not in decoders.METRICS:
            known = ", ".join(sorted(decoders.METRICS))
            raise Unprocessable(f"metric {rule.metric!r} is not a canonical metric; known: {known}")
        if rule.operator is None or rule.open_value is None:
            raise Unprocessable(f"a {rule.kind} rule needs operator and open_value")
        clear = rule.clear_value if rule.clear_value is not None else rule.open_value
        wrong_side = (
            clear > rule.open_value
            if rule.operator is Operator.ABOVE
            else (clear < rule.open_value)
        )
        if wrong_side:
            side = "above" if rule.operator is Operator.BELOW else "below"
            raise Unprocessable(
                f"clear_value {clear} must be at or {side} open_value {rule.open_value}"
            )
        return replace(rule, clear_value=clear, intervals=None, silent_s=None)
    stray = [n for n in ("metric", "operator", "open_value", "clear_value") if getattr(rule, n)]
    if stray:
        raise Unprocessable(f"a {rule.kind} rule takes no {', '.join(stray)}")
    if rule.kind is Kind.SILENCE:
        if rule.intervals is None or rule.intervals <= 0:
            raise Unprocessable("a silence rule needs intervals, a number of reporting intervals")
        return replace(rule, silent_s=None, hold_s=0)
    if rule.silent_s is None or rule.silent_s < 60:
        raise Unprocessable("a gateway_silent rule needs silent_s, 60 seconds or more")
    return replace(rule, intervals=None, hold_s=0)


def _check_scope(rule: Rule) -> Rule:
    allowed = GATEWAY_SCOPES if rule.kind is Kind.GATEWAY_SILENT else DEVICE_SCOPES
    if rule.scope not in allowed:
        names = ", ".join(s.value for s in allowed)
        raise Unprocessable(f"a {rule.kind} rule is scoped to one of {names}")
    value = rule.scope_value
    if rule.scope is Scope.ALL:
        if value is not None:
            raise Unprocessable("scope all takes no scope_value")
        return rule
    if not value:
        raise Unprocessable(f"scope {rule.scope} needs a scope_value")
    if rule.scope is Scope.DEVICE:
        if not _DEV_EUI.fullmatch(value):
            raise Unprocessable(f"scope_value {value!r} is not a DevEUI (16 hex digits)")
        value = value.upper()
    elif rule.scope is Scope.PROFILE and not _PROFILE.fullmatch(value):
        raise Unprocessable(f"scope_value {value!r} is not a profile (vendor/model)")
    elif rule.scope in (Scope.DATASET, Scope.SUPPLIER) and not NAME.fullmatch(value):
        raise Unprocessable(f"scope_value {value!r} is not a {rule.scope} slug")
    elif rule.scope is Scope.CITY and value not in {c.value for c in City}:
        raise Unprocessable(f"scope_value {value!r} is not a city: {', '.join(City)}")
    elif rule.scope is Scope.GATEWAY and (len(value) > 200 or not value.isprintable()):
        raise Unprocessable("scope_value must be a gateway id")
    return replace(rule, scope_value=value)


def _check_scope_exists(conn: psycopg.Connection, rule: Rule) -> None:
    if rule.scope_value is None or rule.scope in (Scope.CITY, Scope.GATEWAY, Scope.PROFILE):
        return
    if not alerts.scope_exists(conn, scope=rule.scope.value, value=rule.scope_value):
        raise Unprocessable(f"no {rule.scope} {rule.scope_value!r} is registered")


# The one place each change is made ---------------------------------------------------------


def create_rule(
    conn: psycopg.Connection, *, rule: Rule, alerts_settings: AlertSettings, actor: str
) -> Rule:
    """Check and store a new rule; Conflict if its name is taken."""
    rule = check_rule(rule, alerts_settings=alerts_settings)
    _check_scope_exists(conn, rule)
    if alerts.get_rule(conn, name=rule.name) is not None:
        raise Conflict(f"an alert rule named {rule.name!r} exists")
    stored = alerts.insert_rule(conn, rule=rule)
    audit.record(
        conn,
        actor=actor,
        action="alert_rule.add",
        target=f"alert_rule:{stored.name}",
        after=_audited(stored),
    )
    return stored


def update_rule(
    conn: psycopg.Connection,
    *,
    name: str,
    changes: Mapping[str, Any],
    alerts_settings: AlertSettings,
    actor: str,
) -> Rule:
    """Change a rule's fields (EDITABLE), checked as a whole; NotFound if there is none."""
    current = get_rule(conn, name=name)
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise Unprocessable(f"cannot change {', '.join(sorted(unknown))}")
    fields = dict(changes)
    if "email_to" in fields:
        fields["email_to"] = tuple(fields["email_to"] or ())
    if "webhook_url" in fields and fields["webhook_url"] != current.webhook_url:
        fields.setdefault("webhook_secret", None)  # a new endpoint gets a new secret
    rule = check_rule(replace(current, **fields), alerts_settings=alerts_settings)
    _check_scope_exists(conn, rule)
    stored = alerts.update_rule(conn, rule=rule)
    audit.record(
        conn,
        actor=actor,
        action="alert_rule.update",
        target=f"alert_rule:{name}",
        before=_audited(current),
        after=_audited(stored),
    )
    return stored


def delete_rule(conn: psycopg.Connection, *, name: str, actor: str) -> Rule:
    """Delete a rule with its state, alarms and notifications; NotFound if there is none."""
    rule = get_rule(conn, name=name)
    alerts.delete_rule(conn, rule_id=rule.id)
    audit.record(
        conn,
        actor=actor,
        action="alert_rule.delete",
        target=f"alert_rule:{name}",
        before=_audited(rule),
    )
    return rule


def acknowledge_alarm(
    conn: psycopg.Connection, *, alarm_id: int, at: datetime, by: str, actor: str
) -> bool:
    """Acknowledge an open alarm in `by`'s name; tell whether it was open."""
    if not alerts.acknowledge_alarm(conn, alarm_id=alarm_id, at=at, by=by):
        return False
    audit.record(
        conn,
        actor=actor,
        action="alarm.acknowledge",
        target=f"alarm:{alarm_id}",
        after={"acknowledged_at": at, "acknowledged_by": by},
    )
    return True


def _audited(rule: Rule) -> dict[str, Any]:
    """Return a rule as the audit log keeps it: whether it has a webhook secret, not the secret."""
    snapshot: dict[str, Any] = audit.jsonable(replace(rule, webhook_secret=None))
    snapshot["webhook_secret"] = "(set)" if rule.webhook_secret else None
    return snapshot


def get_rule(conn: psycopg.Connection, *, name: str) -> Rule:
    """Return a rule by name; NotFound otherwise."""
    rule = alerts.get_rule(conn, name=name)
    if rule is None:
        raise NotFound(f"no alert rule is named {name!r}")
    return rule
