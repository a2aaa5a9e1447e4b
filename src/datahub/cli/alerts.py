"""`datahub alerts`: alert rules, alarms and the delivery log.

They run through the same functions as the operator API (`/v1/admin/alert-rules`, …) and
print its shapes with `--json`. An error (a malformed rule, an unknown name) is exit 2.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from datahub.api import ops_schemas as out
from datahub.cli.arguments import actor_of
from datahub.cli.console import print_json, print_table, transaction
from datahub.config import Settings
from datahub.errors import ConfigError, NotFound
from datahub.ops import rules
from datahub.ops.delivery import Deliverer
from datahub.ops.rule import Kind, Operator, Rule, Scope
from datahub.storage import alerts, db

# Alerts -----------------------------------------------------------------------------------

_RULE_OPTIONS = {
    "kind": "kind",
    "scope": "scope",
    "scope_value": "scope_value",
    "metric": "metric",
    "operator": "operator",
    "open": "open_value",
    "clear": "clear_value",
    "hold": "hold_s",
    "intervals": "intervals",
    "silent": "silent_s",
    "webhook": "webhook_url",
    "webhook_secret": "webhook_secret",
    "email": "email_to",
    "cooldown": "cooldown_s",
}


def _rule_changes(args: argparse.Namespace) -> dict[str, Any]:
    changes = {
        field: getattr(args, option)
        for option, field in _RULE_OPTIONS.items()
        if getattr(args, option) is not None
    }
    for name, enum in (("kind", Kind), ("scope", Scope), ("operator", Operator)):
        if name in changes:
            changes[name] = enum(changes[name])
    if "email_to" in changes:
        changes["email_to"] = tuple(a for a in changes["email_to"] if a)
    for field in ("webhook_url", "scope_value", "metric"):
        if changes.get(field) == "":
            changes[field] = None
    if args.enabled is not None:
        changes["enabled"] = args.enabled == "true"
    return changes


def _rule_add(settings: Settings, args: argparse.Namespace) -> int:
    changes = _rule_changes(args)
    kind = changes.pop("kind", None)
    if kind is None:
        raise ConfigError("--kind is required")
    with transaction(settings) as conn:
        rule = rules.create_rule(
            conn,
            rule=Rule(name=args.name, kind=kind, **changes),
            alerts_settings=settings.alerts,
            actor=actor_of(args),
        )
    print_json(out.new_rule_out(rule))
    return 0


def _rule_update(settings: Settings, args: argparse.Namespace) -> int:
    changes = _rule_changes(args)
    if not changes:
        raise ConfigError("nothing to change: give at least one option")
    with transaction(settings) as conn:
        rule = rules.update_rule(
            conn,
            name=args.name,
            changes=changes,
            alerts_settings=settings.alerts,
            actor=actor_of(args),
        )
    print_json(out.new_rule_out(rule) if "webhook_url" in changes else out.rule_out(rule))
    return 0


def _rule_delete(settings: Settings, args: argparse.Namespace) -> int:
    with transaction(settings) as conn:
        rules.delete_rule(conn, name=args.name, actor=actor_of(args))
    print(f"alert rule {args.name} deleted")
    return 0


def _rule_list(settings: Settings, args: argparse.Namespace) -> int:
    with transaction(settings) as conn:
        found = alerts.list_rules(conn)
    if args.json:
        print_json([out.rule_out(r) for r in found])
        return 0
    print_table(
        [
            (
                r.name,
                r.kind,
                f"{r.scope}:{r.scope_value or '*'}",
                r.metric,
                r.operator,
                r.open_value,
                r.clear_value,
                r.hold_s,
                r.intervals,
                r.silent_s,
                "webhook" if r.webhook_url else None,
                r.email_to,
                r.cooldown_s,
                r.enabled,
            )
            for r in found
        ],
        (
            "NAME",
            "KIND",
            "SCOPE",
            "METRIC",
            "OP",
            "OPEN",
            "CLEAR",
            "HOLD_S",
            "INTERVALS",
            "SILENT_S",
            "WEBHOOK",
            "EMAIL",
            "COOLDOWN_S",
            "ENABLED",
        ),
    )
    return 0


def _alarms(settings: Settings, args: argparse.Namespace) -> int:
    states = {
        "active": ["open", "acknowledged"],
        "all": ["open", "acknowledged", "cleared"],
    }.get(args.state, [args.state])
    with transaction(settings) as conn:
        found = alerts.list_alarms(conn, states=states, rule=args.rule, limit=args.limit)
    if args.json:
        print_json([out.alarm_out(a) for a in found])
        return 0
    print_table(
        [
            (a.id, a.rule_name, a.subject, a.state, a.opened_at, a.cleared_at, a.detail)
            for a in found
        ],
        ("ID", "RULE", "SUBJECT", "STATE", "OPENED", "CLEARED", "DETAIL"),
    )
    return 0


def _acknowledge(settings: Settings, args: argparse.Namespace) -> int:
    with transaction(settings) as conn:
        if not rules.acknowledge_alarm(
            conn, alarm_id=args.id, at=datetime.now(UTC), by=args.by, actor=actor_of(args)
        ):
            raise NotFound(f"no open alarm {args.id}")
    print(f"alarm {args.id} acknowledged")
    return 0


def _log(settings: Settings, args: argparse.Namespace) -> int:
    with transaction(settings) as conn:
        found = alerts.list_notifications(
            conn, rule=args.rule, status=args.status, limit=args.limit
        )
    if args.json:
        print_json([out.notification_out(n) for n in found])
        return 0
    print_table(
        [
            (
                n.id,
                n.created_at,
                n.rule_name,
                n.subject,
                n.event,
                n.channel,
                n.status,
                n.attempts,
                n.last_error,
            )
            for n in found
        ],
        ("ID", "CREATED", "RULE", "SUBJECT", "EVENT", "CHANNEL", "STATUS", "ATTEMPTS", "ERROR"),
    )
    return 0


def _deliver(settings: Settings, args: argparse.Namespace) -> int:
    with db.connect(settings, autocommit=True) as conn:
        sent = Deliverer(settings.alerts).deliver_due(conn)
    print(f"{sent} notifications delivered")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the actions of `datahub alerts`."""
    sub = parser.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    rule = sub.add_parser("rule", help="add, change, delete or list alert rules")
    actions = rule.add_subparsers(dest="rule_command", required=True, metavar="ACTION")
    for action, handler in (("add", _rule_add), ("update", _rule_update)):
        q = actions.add_parser(action, help=f"{action} an alert rule (docs/operations.md)")
        q.add_argument("name")
        q.add_argument("--kind", choices=[k.value for k in Kind])
        q.add_argument("--scope", choices=[s.value for s in Scope])
        q.add_argument("--scope-value", help="DevEUI, profile, dataset, supplier, city, gateway")
        q.add_argument("--metric", help="a canonical metric, e.g. fill_level")
        q.add_argument("--operator", choices=[o.value for o in Operator])
        q.add_argument("--open", type=float, help="opening threshold")
        q.add_argument("--clear", type=float, help="clearing threshold (default: --open)")
        q.add_argument("--hold", type=int, help="seconds beyond --open before it opens")
        q.add_argument("--intervals", type=float, help="silence: reporting intervals")
        q.add_argument("--silent", type=int, help="gateway_silent: seconds")
        q.add_argument("--webhook", help="http(s) URL; '' removes it")
        q.add_argument("--webhook-secret", help="HMAC key (default: one is made up)")
        q.add_argument("--email", action="append", help="a recipient; repeat for more")
        q.add_argument("--cooldown", type=int, help="seconds between notified alarms")
        q.add_argument("--enabled", choices=["true", "false"])
        q.set_defaults(run=handler)
    q = actions.add_parser("delete", help="delete a rule with its alarms")
    q.add_argument("name")
    q.set_defaults(run=_rule_delete)
    q = actions.add_parser("list", help="list the rules")
    q.add_argument("--json", action="store_true")
    q.set_defaults(run=_rule_list)

    q = sub.add_parser("alarms", help="list alarms, newest first")
    q.add_argument(
        "--state", choices=["active", "open", "acknowledged", "cleared", "all"], default="active"
    )
    q.add_argument("--rule")
    q.add_argument("--limit", type=int, default=100)
    q.add_argument("--json", action="store_true")
    q.set_defaults(run=_alarms)
    q = sub.add_parser("ack", help="acknowledge an open alarm")
    q.add_argument("id", type=int)
    q.add_argument("--by", default="cli", help="who acknowledges it")
    q.set_defaults(run=_acknowledge)
    q = sub.add_parser("log", help="the delivery log: notifications and their status")
    q.add_argument("--rule")
    q.add_argument("--status", choices=["pending", "sent", "failed", "suppressed"])
    q.add_argument("--limit", type=int, default=100)
    q.add_argument("--json", action="store_true")
    q.set_defaults(run=_log)
    q = sub.add_parser("deliver", help="send the notifications due now (the ingest does it too)")
    q.set_defaults(run=_deliver)
