"""The device registry."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypeVar

import psycopg
from fastapi import APIRouter, Query, Request, Response

from datahub import privacy
from datahub.api import query, render
from datahub.api.auth import Access
from datahub.api.deps import ANONYMOUS_TOO, Conn, MetricIndexDep, Reader, SettingsDep, ViewDep
from datahub.api.metric_index import MetricIndex
from datahub.api.schemas import (
    DeviceListQuery,
    DeviceOut,
    DevicePageOut,
    LocationOut,
    SupplierOut,
    error_responses,
)
from datahub.domain import City, Placement
from datahub.errors import NotFound, Withheld
from datahub.privacy import PrivacyClass, View
from datahub.storage import devices, readings
from datahub.storage.devices import DeviceRow
from datahub.storage.readings import SeriesDevice

router = APIRouter(tags=["devices"])
Found = TypeVar("Found")


@router.get(
    "/v1/devices",
    response_model=DevicePageOut,
    responses=error_responses(400, 401, 422, 429, 503),
    openapi_extra=ANONYMOUS_TOO,
)
def list_devices(
    params: Annotated[DeviceListQuery, Query()],
    request: Request,
    response: Response,
    conn: Conn,
    settings: SettingsDep,
    metric_index: MetricIndexDep,
    caller: Reader,
    view: ViewDep,
) -> DevicePageOut:
    """List the devices the caller may see by DevEUI, optionally of one city, supplier,
    dataset, or reporting one metric.

    Anonymous callers see the devices of open datasets; a key sees those of its grants too.
    A device of a private owner or a personal one is shown by its public id (`pub-…`)
    to a caller without a grant for its dataset, a private owner's with its position
    snapped to a grid (docs/privacy.md); those are listed after the others, by public id.

    Pages are walked with `cursor`: pass the `next_cursor` of a page to get the next
    one (also linked by a `Link: <url>; rel="next"` header); it is null on the last page.
    400 for an unknown metric, a bad cursor or a limit over the maximum.
    """
    limit = query.page_size(params.limit, settings.api)
    after = query.decode_device_cursor(params.cursor) if params.cursor else None
    profiles = None
    if params.metric is not None:
        profiles = metric_index.profiles_reporting(query.check_metric(params.metric, metric_index))
    rows = devices.list_devices(
        conn,
        city=params.city,
        supplier=params.supplier,
        profiles=profiles,
        dataset=params.dataset,
        dataset_ids=caller.dataset_ids,
        granted=caller.granted_ids,
        after=after,
        limit=limit + 1,
    )
    page, more = query.split_page(rows, limit)
    next_cursor = query.encode_device_cursor(page[-1].shown_id) if more else None
    render.set_next_link(response, render.next_page_url(request, settings, next_cursor))
    return DevicePageOut(
        items=[device_out(row, metric_index, view) for row in page], next_cursor=next_cursor
    )


@router.get(
    "/v1/devices/{dev_eui}",
    response_model=DeviceOut,
    responses=error_responses(400, 401, 404, 422, 429, 503),
    openapi_extra=ANONYMOUS_TOO,
)
def get_device(
    dev_eui: str, conn: Conn, metric_index: MetricIndexDep, caller: Reader, view: ViewDep
) -> DeviceOut:
    """Show one device; `dev_eui` is 16 hex digits in either case, or a public id.

    400 if `dev_eui` is malformed, 404 if no device the caller may see has it. A device
    shown by its public id is found by that id only (docs/privacy.md).
    """
    return device_out(find_device(conn, dev_eui, caller), metric_index, view)


def find_device(conn: psycopg.Connection, dev_eui: str, caller: Access) -> DeviceRow:
    """Look up a device the caller may see by a DevEUI or public id from the URL.

    400 if malformed; 404 if unknown or not visible to the caller, alike, so that an
    error never tells whether a restricted or protected device exists.
    """
    eui, public_id, unknown = _lookup(dev_eui)
    row = devices.device_statement(
        dev_eui=eui, public_id=public_id, dataset_ids=caller.dataset_ids, granted=caller.granted_ids
    ).run(conn)
    return _found(row, unknown)


async def find_series_device(
    conn: psycopg.AsyncConnection, dev_eui: str, caller: Access, *, now: datetime
) -> SeriesDevice:
    """`find_device` on the event loop, with its dataset's cutoff of raw readings at `now`
    and its licence, for the device's series."""
    eui, public_id, unknown = _lookup(dev_eui)
    row = await readings.series_statement(
        now=now,
        dev_eui=eui,
        public_id=public_id,
        dataset_ids=caller.dataset_ids,
        granted=caller.granted_ids,
    ).run_async(conn)
    return _found(row, unknown)


def _lookup(dev_eui: str) -> tuple[str | None, str | None, str]:
    """The DevEUI or the public id to find a device by, and what a 404 names; 400 if
    `dev_eui` is malformed."""
    if privacy.is_public_id(dev_eui):
        return None, dev_eui, f"public id {dev_eui}"
    normalized = query.parse_dev_eui(dev_eui)
    return normalized, None, f"dev_eui {normalized}"


def _found(row: Found | None, unknown: str) -> Found:
    if row is None:
        raise NotFound(f"no device has {unknown}")
    return row


def require_series(row: DeviceRow, k_min: int) -> None:
    """Refuse one device's readings if it is a protected personal device (403)."""
    if not privacy.shows_series(PrivacyClass(row.privacy), row.protected):
        raise Withheld(
            f"{row.shown_id} counts people or parks on private ground: its readings are "
            f"published only as aggregates over at least {k_min} such devices "
            "(/v1/readings/aggregate?city=…); a grant for its dataset shows them"
        )


def device_out(row: DeviceRow, metric_index: MetricIndex, view: View) -> DeviceOut:
    privacy_class = PrivacyClass(row.privacy)
    location = None
    position = view.position(row.latitude, row.longitude, privacy_class, row.protected)
    if position is not None:
        location = LocationOut(latitude=position[0], longitude=position[1])
    return DeviceOut(
        dev_eui=row.shown_id,
        name=view.name(row.name, row.shown_id, privacy_class, row.protected),
        city=City(row.city),
        supplier=SupplierOut(slug=row.supplier_slug, name=row.supplier_name),
        dataset=row.dataset_slug,
        profile=row.profile,
        reporting_interval_s=metric_index.reporting_interval(row.profile),
        location=location,
        last_seen=row.last_seen_at,
        metrics=list(metric_index.metrics_of(row.profile)),
        counters=[
            m
            for m in metric_index.metrics_of(row.profile)
            if metric_index.is_counter(row.profile, m)
        ],
        placement=Placement(row.placement) if row.placement else None,
        area=row.area,
        privacy=privacy_class,
    )
