"""The operator's views: device and gateway health, the coverage map, and alarms.

An administrator's key sees every device; the key of a consumer acting for a supplier sees
that supplier's devices (and the gateways and alarms about them) only; any other key is
refused (403). The figures come from the health tables the ingest keeps (docs/operations.md).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Response

from datahub.api import ops_schemas as out
from datahub.api import render
from datahub.api.deps import Conn, MetricIndexDep, Operator, PrimaryConn, SettingsDep, WriteConn
from datahub.api.query import parse_dev_eui
from datahub.api.schemas import error_responses
from datahub.errors import Conflict, NotFound
from datahub.ops import rules, views
from datahub.storage import alerts, device_health

router = APIRouter(prefix="/v1/operations", tags=["operations"])

_ERRORS = error_responses(400, 401, 403, 422, 429, 503)

ALARM_STATES = {
    "active": ["open", "acknowledged"],
    "open": ["open"],
    "acknowledged": ["acknowledged"],
    "cleared": ["cleared"],
    "all": ["open", "acknowledged", "cleared"],
}


@router.get("/devices", response_model=out.DeviceHealthListOut, responses=_ERRORS)
def list_device_health(
    params: Annotated[out.DeviceHealthQuery, Query()],
    conn: Conn,
    metric_index: MetricIndexDep,
    settings: SettingsDep,
    caller: Operator,
) -> Response:
    """List devices with their health, by DevEUI: status, loss, radio, battery, airtime.

    `status` is computed now from the last uplink and the expected interval; the other
    figures as of each device's `computed_at` (at most a minute behind its last uplink).
    """
    rows = device_health.list_device_health(
        conn,
        supplier_id=None if caller.oversees else caller.supplier_id,
        city=params.city,
        supplier=params.supplier,
        dataset=params.dataset,
        profile=params.profile,
    )
    found = views.device_views(
        rows,
        interval_of=metric_index.reporting_interval,
        now=datetime.now(UTC),
        settings=settings.health,
    )
    shown = [v for v in found if params.status is None or v.status is params.status]
    counts = Counter(v.status.value for v in shown)
    # Thousands of devices: rendered by pydantic's serializer at once, not validated again.
    return render.json_response(
        {"items": [out.device_out(v) for v in shown], "counts": dict(counts)}
    )


@router.get(
    "/devices/{dev_eui}",
    response_model=out.DeviceDetailOut,
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
)
def get_device_health(
    dev_eui: str, conn: Conn, metric_index: MetricIndexDep, settings: SettingsDep, caller: Operator
) -> out.DeviceDetailOut:
    """Show one device's health with every gateway that heard it in 7 days."""
    eui = parse_dev_eui(dev_eui)
    supplier_id = None if caller.oversees else caller.supplier_id
    rows = device_health.list_device_health(conn, supplier_id=supplier_id, dev_eui=eui)
    if not rows:
        raise NotFound(f"no device has dev_eui {eui}")
    (view,) = views.device_views(
        rows,
        interval_of=metric_index.reporting_interval,
        now=datetime.now(UTC),
        settings=settings.health,
    )
    links = device_health.list_gateway_links(conn, supplier_id=supplier_id, dev_eui=eui)
    return out.device_detail_out(
        view,
        [
            out.GatewayLinkOut(
                gateway_id=g.gateway_id,
                uplinks_24h=g.uplinks_24h,
                uplinks_7d=g.uplinks_7d,
                last_heard=g.last_heard_at,
                rssi_best=g.rssi_best,
                rssi_median=g.rssi_median,
                snr_best=g.snr_best,
                snr_median=g.snr_median,
            )
            for g in links
        ],
    )


@router.get("/gateways", response_model=out.GatewayListOut, responses=_ERRORS)
def list_gateways(
    params: Annotated[out.GatewayQuery, Query()],
    conn: Conn,
    settings: SettingsDep,
    caller: Operator,
) -> Response:
    """List every gateway that heard a registered device in 7 days (for a supplier's key:
    one of its devices), with uplinks per hour, devices heard and their RSSI and SNR.

    A gateway is `silent` when it heard nothing for `health.gateway_silent_after_s`.
    """
    links = device_health.list_gateway_links(
        conn, supplier_id=None if caller.oversees else caller.supplier_id, city=params.city
    )
    found = views.gateway_views(
        links, now=datetime.now(UTC), silent_after_s=settings.health.gateway_silent_after_s
    )
    return render.json_response(
        {"items": [out.gateway_out(g) for g in found if params.status in (None, g.status)]}
    )


@router.get(
    "/coverage",
    responses={
        200: {
            "content": {"application/geo+json": {"schema": {"type": "object"}}},
            "description": "a GeoJSON FeatureCollection: one Point per located device, "
            "with `best_rssi`, `best_snr` and the `gateways` that hear it",
        },
        **_ERRORS,
    },
)
def get_coverage(conn: Conn, caller: Operator) -> Response:
    """The coverage map as GeoJSON: each located device with the gateways that hear it."""
    links = device_health.list_gateway_links(
        conn, supplier_id=None if caller.oversees else caller.supplier_id
    )
    return Response(orjson.dumps(views.coverage(links)), media_type="application/geo+json")


@router.get("/alarms", response_model=out.AlarmListOut, responses=_ERRORS)
def list_alarms(
    params: Annotated[out.AlarmQuery, Query()], conn: PrimaryConn, caller: Operator
) -> out.AlarmListOut:
    """List alarms, newest first: the active ones (open or acknowledged) unless asked."""
    # On the primary: an operator who acknowledged an alarm sees it so at once.
    before = out.parse_id_cursor(params.cursor)
    rows = alerts.list_alarms(
        conn,
        states=ALARM_STATES[params.state],
        supplier_id=None if caller.oversees else caller.supplier_id,
        rule=params.rule,
        before=before,
        limit=params.limit + 1,
    )
    page = rows[: params.limit]
    more = len(rows) > params.limit
    return out.AlarmListOut(
        items=[out.alarm_out(r) for r in page],
        next_cursor=out.id_cursor(page[-1].id) if more else None,
    )


@router.post(
    "/alarms/{alarm_id}/acknowledge",
    response_model=out.AlarmOut,
    responses=error_responses(401, 403, 404, 409, 422, 429, 503),
)
def acknowledge_alarm(alarm_id: int, conn: WriteConn, caller: Operator) -> out.AlarmOut:
    """Acknowledge an open alarm: someone is on it. It clears by itself when the condition
    ends. 409 if it is not open (acknowledged already, or cleared)."""
    supplier_id = None if caller.oversees else caller.supplier_id
    found = alerts.list_alarms(
        conn, states=ALARM_STATES["all"], supplier_id=supplier_id, alarm_id=alarm_id
    )
    if not found:
        raise NotFound(f"no alarm {alarm_id}")
    by = caller.consumer_slug or "unknown"
    if not rules.acknowledge_alarm(
        conn, alarm_id=alarm_id, at=datetime.now(UTC), by=by, actor=caller.actor
    ):
        raise Conflict(f"alarm {alarm_id} is {found[0].state}, not open")
    (row,) = alerts.list_alarms(conn, states=ALARM_STATES["all"], alarm_id=alarm_id)
    return out.alarm_out(row)
