"""Administration of alert rules, and the notifications' delivery log (admin scope).

The rules live in datahub.ops.rules, which the CLI uses too. A rule that breaks one
(thresholds on the wrong side, an unknown metric, a webhook URL that is not http(s),
e-mail without a mail server) is a 422 that says which.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from datahub.api import ops_schemas as out
from datahub.api.deps import Admin, Conn, Overseer, PrimaryConn, SettingsDep, WriteConn
from datahub.api.schemas import error_responses
from datahub.errors import BadRequest
from datahub.ops import rules
from datahub.storage import alerts

router = APIRouter(prefix="/v1/admin", tags=["admin"])

_READ = error_responses(401, 403, 404, 422, 429, 503)
_WRITE = error_responses(400, 401, 403, 404, 409, 422, 429, 503)


@router.get("/alert-rules", response_model=out.RuleListOut, responses=_READ)
def list_rules(conn: PrimaryConn, caller: Overseer) -> out.RuleListOut:
    """List every alert rule by name."""
    return out.RuleListOut(items=[out.rule_out(r) for r in alerts.list_rules(conn)])


@router.post(
    "/alert-rules",
    response_model=out.NewRuleOut,
    status_code=status.HTTP_201_CREATED,
    responses=_WRITE,
)
def add_rule(
    body: out.RuleIn,
    response: Response,
    conn: WriteConn,
    settings: SettingsDep,
    caller: Admin,
) -> out.NewRuleOut:
    """Add an alert rule. The webhook secret (given, or made up) is in this answer only."""
    rule = rules.create_rule(
        conn, rule=body.to_rule(), alerts_settings=settings.alerts, actor=caller.actor
    )
    response.headers["Cache-Control"] = "no-store"
    return out.new_rule_out(rule)


@router.get("/alert-rules/{name}", response_model=out.RuleOut, responses=_READ)
def get_rule(name: str, conn: PrimaryConn, caller: Overseer) -> out.RuleOut:
    """Show one alert rule."""
    return out.rule_out(rules.get_rule(conn, name=name))


@router.patch("/alert-rules/{name}", response_model=out.NewRuleOut, responses=_WRITE)
def update_rule(
    name: str,
    body: out.RulePatch,
    response: Response,
    conn: WriteConn,
    settings: SettingsDep,
    caller: Admin,
) -> out.NewRuleOut:
    """Change an alert rule; a new webhook URL gets a new secret, shown in this answer only."""
    changes = body.model_dump(exclude_unset=True)
    if "kind" in changes and changes["kind"] is None:
        raise BadRequest("kind cannot be null")
    rule = rules.update_rule(
        conn, name=name, changes=changes, alerts_settings=settings.alerts, actor=caller.actor
    )
    response.headers["Cache-Control"] = "no-store"
    shown = out.new_rule_out(rule)
    if "webhook_url" not in changes and "webhook_secret" not in changes:
        shown = shown.model_copy(update={"webhook_secret": None})
    return shown


@router.delete(
    "/alert-rules/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_WRITE,
)
def delete_rule(name: str, conn: WriteConn, caller: Admin) -> None:
    """Delete an alert rule with its alarms and their notifications."""
    rules.delete_rule(conn, name=name, actor=caller.actor)


@router.get("/notifications", response_model=out.NotificationListOut, responses=_READ)
def list_notifications(
    params: Annotated[out.NotificationQuery, Query()], conn: Conn, caller: Overseer
) -> out.NotificationListOut:
    """The delivery log: notifications newest first, with their status and attempts."""
    before = out.parse_id_cursor(params.cursor)
    rows = alerts.list_notifications(
        conn,
        rule=params.rule,
        status=params.status,
        alarm_id=params.alarm,
        before=before,
        limit=params.limit + 1,
    )
    page = rows[: params.limit]
    return out.NotificationListOut(
        items=[out.notification_out(r) for r in page],
        next_cursor=out.id_cursor(page[-1].id) if len(rows) > params.limit else None,
    )
