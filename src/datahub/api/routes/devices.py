"""The device registry."""

from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, Query, Request, Response

from datahub.api import query, render
from datahub.api.auth import Access
from datahub.api.catalog import MetricCatalog
from datahub.api.deps import ANONYMOUS_TOO, CatalogDep, Conn, Reader, SettingsDep
from datahub.api.schemas import (
    DeviceListQuery,
    DeviceOut,
    DevicePageOut,
    LocationOut,
    SupplierOut,
    error_responses,
)
from datahub.domain import City, Placement
from datahub.errors import NotFound
from datahub.storage import devices
from datahub.storage.devices import DeviceRow

router = APIRouter(tags=["devices"])


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
    catalog: CatalogDep,
    caller: Reader,
) -> DevicePageOut:
    """List the devices the caller may see by DevEUI, optionally of one city, supplier,
    dataset, or reporting one metric.

    Anonymous callers see the devices of open datasets; a key sees those of its grants too.

    Pages are walked with `cursor`: pass the `next_cursor` of a page to get the next
    one (also linked by a `Link: <url>; rel="next"` header); it is null on the last page.
    400 for an unknown metric, a bad cursor or a limit over the maximum.
    """
    limit = query.page_size(params.limit, settings.api)
    after = query.decode_device_cursor(params.cursor) if params.cursor else None
    profiles = None
    if params.metric is not None:
        profiles = catalog.profiles_reporting(query.check_metric(params.metric, catalog))
    rows = devices.list_devices(
        conn,
        city=params.city,
        supplier=params.supplier,
        profiles=profiles,
        dataset=params.dataset,
        dataset_ids=caller.dataset_ids,
        after=after,
        limit=limit + 1,
    )
    page, more = query.split_page(rows, limit)
    next_cursor = query.encode_device_cursor(page[-1].dev_eui) if more else None
    render.set_next_link(response, render.next_page_url(request, settings, next_cursor))
    return DevicePageOut(items=[device_out(row, catalog) for row in page], next_cursor=next_cursor)


@router.get(
    "/v1/devices/{dev_eui}",
    response_model=DeviceOut,
    responses=error_responses(400, 401, 404, 422, 429, 503),
    openapi_extra=ANONYMOUS_TOO,
)
def get_device(dev_eui: str, conn: Conn, catalog: CatalogDep, caller: Reader) -> DeviceOut:
    """Show one device; `dev_eui` is 16 hex digits in either case.

    400 if `dev_eui` is malformed, 404 if no device the caller may see has it.
    """
    return device_out(find_device(conn, dev_eui, caller), catalog)


def find_device(conn: psycopg.Connection, dev_eui: str, caller: Access) -> DeviceRow:
    """Look up a device the caller may see by a DevEUI from the URL.

    400 if malformed; 404 if unknown or not visible to the caller, alike, so that an
    error never tells whether a restricted device exists.
    """
    normalized = query.parse_dev_eui(dev_eui)
    row = devices.get_device(conn, dev_eui=normalized, dataset_ids=caller.dataset_ids)
    if row is None:
        raise NotFound(f"no device has dev_eui {normalized}")
    return row


def device_out(row: DeviceRow, catalog: MetricCatalog) -> DeviceOut:
    location = None
    if row.latitude is not None and row.longitude is not None:
        location = LocationOut(latitude=row.latitude, longitude=row.longitude)
    return DeviceOut(
        dev_eui=row.dev_eui,
        name=row.name,
        city=City(row.city),
        supplier=SupplierOut(slug=row.supplier_slug, name=row.supplier_name),
        dataset=row.dataset_slug,
        profile=row.profile,
        reporting_interval_s=catalog.reporting_interval(row.profile),
        location=location,
        last_seen=row.last_seen_at,
        metrics=list(catalog.metrics_of(row.profile)),
        counters=[m for m in catalog.metrics_of(row.profile) if catalog.is_counter(row.profile, m)],
        placement=Placement(row.placement) if row.placement else None,
        area=row.area,
    )
