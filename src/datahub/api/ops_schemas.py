"""Models of the operator's API: health, gateways, alarms, alert rules and what the ingest
could not place. `datahub ops … --json` prints the same `…Out` shapes."""

from __future__ import annotations

import base64
import codecs
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field

from datahub.api.schemas import InModel, OutModel, UtcTime
from datahub.domain import SLUG, City
from datahub.errors import BadRequest
from datahub.ops.health import Status
from datahub.ops.rule import Kind, Operator, Rule, Scope
from datahub.ops.views import DeviceView, GatewayView
from datahub.storage.alerts import AlarmRow, NotificationRow
from datahub.storage.dead_letters import StoredDeadLetter
from datahub.storage.unplaced import DecodeFailureRow, UnknownDeviceRow

Slug = Annotated[str, Field(pattern=SLUG.pattern)]
Limit = Annotated[int, Field(ge=1, le=1000, description="page size")]


# Query strings ----------------------------------------------------------------------------


class DeviceHealthQuery(InModel):
    city: City | None = None
    supplier: Slug | None = None
    dataset: Slug | None = None
    profile: str | None = Field(default=None, max_length=200)
    status: Status | None = None


class GatewayQuery(InModel):
    city: City | None = None
    status: Status | None = None


class AlarmQuery(InModel):
    state: Literal["active", "open", "acknowledged", "cleared", "all"] = Field(
        default="active", description="active: open or acknowledged"
    )
    rule: Slug | None = None
    limit: Limit = 100
    cursor: str | None = Field(default=None, description="the `next_cursor` of the last page")


class NotificationQuery(InModel):
    rule: Slug | None = None
    status: Literal["pending", "sent", "failed", "suppressed"] | None = None
    alarm: int | None = Field(default=None, ge=1, description="one alarm's notifications")
    limit: Limit = 100
    cursor: str | None = None


class UnknownDeviceQuery(InModel):
    since: AwareDatetime | None = Field(default=None, description="uplinks received since")
    city: City | None = None
    source: str | None = Field(default=None, max_length=63)
    limit: Limit = 100
    cursor: str | None = None


class DecodeFailureQuery(InModel):
    since: AwareDatetime | None = None
    profile: str | None = Field(default=None, max_length=200)


class DeadLetterQuery(InModel):
    stage: Literal["envelope", "decode", "store"] | None = None
    reason: str | None = Field(default=None, max_length=63, pattern=r"^[a-z_]+$")
    source: str | None = Field(default=None, max_length=63)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    limit: Limit = 100
    cursor: str | None = None


# Health -----------------------------------------------------------------------------------


class LossOut(OutModel):
    received: int = Field(description="distinct frames received")
    lost: int = Field(description="frames missing between received ones of one session")
    ratio: float | None = Field(description="lost / (received + lost)")


class RadioOut(OutModel):
    rssi_median: float | None = Field(description="dBm, of each frame's best gateway, 7 d")
    rssi_worst: float | None
    snr_median: float | None = Field(description="dB, of each frame's best gateway, 7 d")
    snr_worst: float | None
    data_rates: dict[str, int] = Field(description="frames per data rate over 7 d")


class BatteryOut(OutModel):
    metric: str = Field(description="battery (%) when reported, else battery_voltage (V)")
    value: float
    time: UtcTime
    trend_per_day: float | None = Field(description="least-squares slope over 14 days")
    empty_at: UtcTime | None = Field(description="when the trend reaches 0 % (battery only)")


class AirtimeOut(OutModel):
    seconds_24h: float = Field(description="LoRa time on air of the last 24 h's frames")
    budget_s: float = Field(description="TTN's fair-use budget per day")
    share: float = Field(description="seconds_24h / budget_s")


class DeviceHealthOut(OutModel):
    dev_eui: str
    name: str
    city: City
    supplier: str
    dataset: str
    profile: str
    status: Status
    last_seen: UtcTime | None
    expected_interval_s: int | None
    interval_source: Literal["profile", "learned"] | None
    learned_interval_s: int | None
    loss_24h: LossOut | None
    loss_7d: LossOut | None
    resets_7d: int | None = Field(description="frame-counter resets (rejoins, reboots) in 7 d")
    radio: RadioOut | None
    battery: BatteryOut | None
    airtime: AirtimeOut | None
    computed_at: UtcTime | None = Field(description="when the figures were computed; null: not yet")


class DeviceHealthListOut(OutModel):
    items: list[DeviceHealthOut]
    counts: dict[str, int] = Field(description="devices listed by status")


class GatewayLinkOut(OutModel):
    gateway_id: str
    uplinks_24h: int
    uplinks_7d: int
    last_heard: UtcTime
    rssi_best: float | None
    rssi_median: float | None
    snr_best: float | None
    snr_median: float | None


class DeviceDetailOut(DeviceHealthOut):
    gateways: list[GatewayLinkOut]


class SpreadOut(OutModel):
    min: float
    median: float
    max: float


class GatewayOut(OutModel):
    gateway_id: str
    city: City
    network: str = Field(description="the source (network server) it was heard through")
    status: Status = Field(
        description="silent when it heard nothing for health.gateway_silent_after_s"
    )
    last_heard: UtcTime
    uplinks_24h: int
    uplinks_per_hour: float
    devices_24h: int
    devices_7d: int
    rssi: SpreadOut | None = Field(description="over its devices' median RSSI, dBm")
    snr: SpreadOut | None


class GatewayListOut(OutModel):
    items: list[GatewayOut]


def device_out(view: DeviceView) -> DeviceHealthOut:
    return DeviceHealthOut(**_device_fields(view))


def device_detail_out(view: DeviceView, links: list[GatewayLinkOut]) -> DeviceDetailOut:
    return DeviceDetailOut(**_device_fields(view), gateways=links)


def _device_fields(view: DeviceView) -> dict[str, Any]:
    r = view.row
    computed = r.computed_at is not None
    battery = None
    if r.battery_metric is not None and r.battery_value is not None and r.battery_time:
        battery = BatteryOut(
            metric=r.battery_metric,
            value=r.battery_value,
            time=r.battery_time,
            trend_per_day=r.battery_trend_per_day,
            empty_at=r.battery_empty_at,
        )
    return {
        "dev_eui": r.dev_eui,
        "name": r.name,
        "city": City(r.city),
        "supplier": r.supplier_slug,
        "dataset": r.dataset_slug,
        "profile": r.profile,
        "status": view.status,
        "last_seen": r.last_seen_at,
        "expected_interval_s": view.expected_interval_s,
        "interval_source": view.interval_source,
        "learned_interval_s": r.learned_interval_s,
        "loss_24h": _loss(r.frames_24h, r.lost_24h),
        "loss_7d": _loss(r.frames_7d, r.lost_7d),
        "resets_7d": r.resets_7d,
        "radio": RadioOut(
            rssi_median=r.rssi_median,
            rssi_worst=r.rssi_worst,
            snr_median=r.snr_median,
            snr_worst=r.snr_worst,
            data_rates=r.data_rates or {},
        )
        if computed
        else None,
        "battery": battery,
        "airtime": AirtimeOut(
            seconds_24h=r.airtime_24h_s or 0.0,
            budget_s=30.0,
            share=view.airtime_share or 0.0,
        )
        if computed
        else None,
        "computed_at": r.computed_at,
    }


def _loss(received: int | None, lost: int | None) -> LossOut | None:
    if received is None or lost is None:
        return None
    sent = received + lost
    return LossOut(received=received, lost=lost, ratio=lost / sent if sent else None)


def gateway_out(view: GatewayView) -> GatewayOut:
    return GatewayOut(
        gateway_id=view.gateway_id,
        city=City(view.city),
        network=view.source,
        status=view.status,
        last_heard=view.last_heard_at,
        uplinks_24h=view.uplinks_24h,
        uplinks_per_hour=round(view.uplinks_per_hour, 3),
        devices_24h=view.devices_24h,
        devices_7d=view.devices_7d,
        rssi=SpreadOut(min=view.rssi[0], median=view.rssi[1], max=view.rssi[2])
        if view.rssi
        else None,
        snr=SpreadOut(min=view.snr[0], median=view.snr[1], max=view.snr[2]) if view.snr else None,
    )


# Alarms and rules -------------------------------------------------------------------------


class AlarmOut(OutModel):
    id: int
    rule: str
    kind: Kind
    subject: str = Field(description="a DevEUI, or a gateway id for gateway rules")
    device_name: str | None
    city: str | None
    supplier: str | None
    state: Literal["open", "acknowledged", "cleared"]
    opened_at: UtcTime
    open_value: float | None
    acknowledged_at: UtcTime | None
    acknowledged_by: str | None
    cleared_at: UtcTime | None
    clear_value: float | None
    notified: bool = Field(description="false: opened within the rule's cooldown, not notified")
    detail: str


class AlarmListOut(OutModel):
    items: list[AlarmOut]
    next_cursor: str | None


def alarm_out(row: AlarmRow) -> AlarmOut:
    return AlarmOut(
        id=row.id,
        rule=row.rule_name,
        kind=Kind(row.rule_kind),
        subject=row.subject,
        device_name=row.device_name,
        city=row.city,
        supplier=row.supplier_slug,
        state=row.state,  # type: ignore[arg-type]
        opened_at=row.opened_at,
        open_value=row.open_value,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        cleared_at=row.cleared_at,
        clear_value=row.clear_value,
        notified=row.notified,
        detail=row.detail,
    )


WebhookUrl = Annotated[
    str, Field(max_length=2000, examples=["https://ops.example.org/hooks/datahub"])
]
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")]


class RuleIn(InModel):
    """An alert rule (docs/operations.md#alerts); what a kind does not use must be left out."""

    name: Slug
    kind: Kind
    scope: Scope = Scope.ALL
    scope_value: str | None = Field(default=None, max_length=200)
    metric: str | None = Field(default=None, max_length=63, examples=["fill_level"])
    operator: Operator | None = None
    open_value: float | None = Field(default=None, allow_inf_nan=False)
    clear_value: float | None = Field(default=None, allow_inf_nan=False)
    hold_s: int = Field(default=0, ge=0, le=7 * 86_400)
    intervals: float | None = Field(default=None, gt=0, le=1000, allow_inf_nan=False)
    silent_s: int | None = Field(default=None, ge=60, le=30 * 86_400)
    webhook_url: WebhookUrl | None = None
    webhook_secret: str | None = Field(
        default=None, min_length=16, max_length=200, description="default: one is made up"
    )
    email_to: list[Email] = Field(default_factory=list, max_length=20)
    cooldown_s: int = Field(default=0, ge=0, le=30 * 86_400)
    enabled: bool = True

    def to_rule(self) -> Rule:
        return Rule(**{**self.model_dump(), "email_to": tuple(self.email_to)})


class RulePatch(InModel):
    """The fields to change; the rule is checked again as a whole."""

    kind: Kind | None = None
    scope: Scope | None = None
    scope_value: str | None = Field(default=None, max_length=200)
    metric: str | None = Field(default=None, max_length=63)
    operator: Operator | None = None
    open_value: float | None = Field(default=None, allow_inf_nan=False)
    clear_value: float | None = Field(default=None, allow_inf_nan=False)
    hold_s: int | None = Field(default=None, ge=0, le=7 * 86_400)
    intervals: float | None = Field(default=None, gt=0, le=1000, allow_inf_nan=False)
    silent_s: int | None = Field(default=None, ge=60, le=30 * 86_400)
    webhook_url: WebhookUrl | None = None
    webhook_secret: str | None = Field(default=None, min_length=16, max_length=200)
    email_to: list[Email] | None = Field(default=None, max_length=20)
    cooldown_s: int | None = Field(default=None, ge=0, le=30 * 86_400)
    enabled: bool | None = None


class RuleOut(OutModel):
    name: str
    kind: Kind
    scope: Scope
    scope_value: str | None
    metric: str | None
    operator: Operator | None
    open_value: float | None
    clear_value: float | None
    hold_s: int
    intervals: float | None
    silent_s: int | None
    webhook_url: str | None
    webhook_secret_set: bool = Field(description="the secret itself is shown once, on creation")
    email_to: list[str]
    cooldown_s: int
    enabled: bool


class NewRuleOut(RuleOut):
    webhook_secret: str | None = Field(
        description="the HMAC-SHA256 key of the webhook's signatures; shown only now"
    )


class RuleListOut(OutModel):
    items: list[RuleOut]


def rule_out(rule: Rule) -> RuleOut:
    return RuleOut(**_rule_fields(rule))


def new_rule_out(rule: Rule) -> NewRuleOut:
    return NewRuleOut(**_rule_fields(rule), webhook_secret=rule.webhook_secret)


def _rule_fields(rule: Rule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "kind": rule.kind,
        "scope": rule.scope,
        "scope_value": rule.scope_value,
        "metric": rule.metric,
        "operator": rule.operator,
        "open_value": rule.open_value,
        "clear_value": rule.clear_value,
        "hold_s": rule.hold_s,
        "intervals": rule.intervals,
        "silent_s": rule.silent_s,
        "webhook_url": rule.webhook_url,
        "webhook_secret_set": bool(rule.webhook_secret),
        "email_to": list(rule.email_to),
        "cooldown_s": rule.cooldown_s,
        "enabled": rule.enabled,
    }


class NotificationOut(OutModel):
    id: int
    idempotency_key: str
    alarm_id: int
    rule: str
    subject: str
    event: Literal["open", "cleared"]
    channel: Literal["webhook", "email"]
    target: str
    status: Literal["pending", "sent", "failed", "suppressed"]
    attempts: int
    last_error: str | None
    created_at: UtcTime
    sent_at: UtcTime | None


class NotificationListOut(OutModel):
    items: list[NotificationOut]
    next_cursor: str | None


def notification_out(row: NotificationRow) -> NotificationOut:
    return NotificationOut(
        id=row.id,
        idempotency_key=str(row.idempotency_key),
        alarm_id=row.alarm_id,
        rule=row.rule_name,
        subject=row.subject,
        event=row.event,  # type: ignore[arg-type]
        channel=row.channel,  # type: ignore[arg-type]
        target=row.target,
        status=row.status,  # type: ignore[arg-type]
        attempts=row.attempts,
        last_error=row.last_error,
        created_at=row.created_at,
        sent_at=row.sent_at,
    )


# What the ingest could not place ----------------------------------------------------------


class UnknownDeviceOut(OutModel):
    dev_eui: str
    uplinks: int
    first_seen: UtcTime
    last_seen: UtcTime
    source: str = Field(description="of the newest uplink")
    city: City
    last_f_port: int | None
    last_payload_hex: str
    gateways: list[str] = Field(description="every gateway that heard its uplinks")
    registered: bool = Field(
        description="registered since: `datahub redecode --device` decodes what came before"
    )


class UnknownDeviceListOut(OutModel):
    items: list[UnknownDeviceOut]
    next_cursor: str | None


def unknown_device_out(row: UnknownDeviceRow) -> UnknownDeviceOut:
    return UnknownDeviceOut(
        dev_eui=row.dev_eui,
        uplinks=row.uplinks,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        source=row.source,
        city=City(row.city),
        last_f_port=row.last_f_port,
        last_payload_hex=row.last_payload.hex(),
        gateways=row.gateways,
        registered=row.registered,
    )


class DecodeFailureOut(OutModel):
    profile: str
    status: Literal["failed", "no_decoder"]
    uplinks: int
    devices: int
    first_seen: UtcTime
    last_seen: UtcTime
    last_error: str | None
    last_decoder: str | None


class DecodeFailureListOut(OutModel):
    items: list[DecodeFailureOut]


def decode_failure_out(row: DecodeFailureRow) -> DecodeFailureOut:
    return DecodeFailureOut(
        profile=row.profile,
        status=row.status,  # type: ignore[arg-type]
        uplinks=row.uplinks,
        devices=row.devices,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        last_error=row.last_error,
        last_decoder=row.last_decoder,
    )


class DeadLetterOut(OutModel):
    id: int
    received_at: UtcTime
    source: str
    topic: str
    stage: str
    reason: str
    detail: str
    dev_eui: str | None
    body_length: int = Field(description="bytes of the whole message")
    body_sha256: str = Field(description="SHA-256 of the whole message, hex")
    body_kept: int = Field(
        description="bytes of the message kept: all of them, or its head of "
        "`ingest.dead_letter_head_bytes`"
    )


class DeadLetterListOut(OutModel):
    items: list[DeadLetterOut]
    next_cursor: str | None


class DeadLetterBodyOut(DeadLetterOut):
    body_hex: str = Field(description="the message's original bytes (its head: `body_kept`)")
    body_base64: str
    body_text: str | None = Field(
        description="the bytes as text, when they are UTF-8 (a character cut at the end of "
        "a head is left out)"
    )


def dead_letter_out(row: StoredDeadLetter) -> DeadLetterOut:
    return DeadLetterOut(**_letter_fields(row))


def dead_letter_body_out(row: StoredDeadLetter) -> DeadLetterBodyOut:
    body = row.body or b""
    try:
        # A head may end inside a character: decode it as the start of a longer text.
        whole = row.head_length == row.body_length
        text: str | None = codecs.getincrementaldecoder("utf-8")().decode(body, final=whole)
    except UnicodeDecodeError:
        text = None
    return DeadLetterBodyOut(
        **_letter_fields(row),
        body_hex=body.hex(),
        body_base64=base64.b64encode(body).decode(),
        body_text=text,
    )


def _letter_fields(row: StoredDeadLetter) -> dict[str, Any]:
    return {
        "id": row.id,
        "received_at": row.received_at,
        "source": row.source,
        "topic": row.topic,
        "stage": row.stage,
        "reason": row.reason,
        "detail": row.detail,
        "dev_eui": row.dev_eui,
        "body_length": row.body_length,
        "body_sha256": row.body_sha256.hex(),
        "body_kept": row.head_length,
    }


def id_cursor(last_id: int | None) -> str | None:
    """An opaque cursor after the row with this id (lists newest first)."""
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode() if last_id else None


def parse_id_cursor(cursor: str | None) -> int | None:
    """The id an `id_cursor` stands for; BadRequest if it is none of ours."""
    if cursor is None:
        return None
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode() + b"==").decode().partition(":")
    except ValueError:
        kind, value = "", ""
    if kind != "id" or not value.isdigit():
        raise BadRequest("cursor is not valid here; pass next_cursor unchanged")
    return int(value)
