"""The newest value of every device and metric."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from datahub.api import metering, query, render
from datahub.api.deps import CatalogDep, Conn, Metered
from datahub.api.licences import licences_of, link_licences
from datahub.api.schemas import (
    CSV_RESPONSE,
    LatestListOut,
    LatestOut,
    LatestQuery,
    error_responses,
)
from datahub.domain import City
from datahub.storage import devices, readings

router = APIRouter(tags=["readings"])


@router.get(
    "/v1/latest",
    response_model=LatestListOut,
    responses={**CSV_RESPONSE, **error_responses(400, 401, 409, 422, 429, 503)},
)
def list_latest(
    params: Annotated[LatestQuery, Query()],
    request: Request,
    conn: Conn,
    catalog: CatalogDep,
    meter: Metered,
) -> LatestListOut | Response:
    """List the newest reading of each device and metric, by DevEUI, then metric.

    The (device, metric) pairs are those of each device's profile; a pair without any
    reading is left out. Only devices the caller may see are listed; filter further by
    `city`, `supplier`, `dataset` (slugs) and `metric`. Each value counts as one
    observation of its device's dataset. 400 for an unknown metric.
    """
    metric = query.check_metric(params.metric, catalog) if params.metric else None
    candidates = devices.list_devices(
        conn,
        city=params.city,
        supplier=params.supplier,
        dataset=params.dataset,
        dataset_ids=meter.caller.dataset_ids,
        profiles=catalog.profiles_reporting(metric) if metric else None,
    )
    pairs = [
        (device.id, m)
        for device in candidates
        for m in catalog.metrics_of(device.profile)
        if metric is None or m == metric
    ]
    latest = readings.select_latest(conn, pairs=pairs)
    served = metering.count_by_dataset(row.dataset_id for row in latest)
    meter.charge(served)
    licences = licences_of(conn, served)
    items = [
        LatestOut(
            dev_eui=row.dev_eui,
            name=row.name,
            city=City(row.city),
            metric=row.metric,
            unit=catalog.unit(row.metric),
            time=row.time,
            value=row.value,
        )
        for row in latest
    ]
    if render.wants_csv(request, params.format):
        csv = render.csv_response(
            ("dev_eui", "name", "city", "metric", "unit", "time", "value"),
            ((i.dev_eui, i.name, i.city, i.metric, i.unit, i.time, i.value) for i in items),
        )
        link_licences(csv, licences)
        return csv
    return LatestListOut(items=items, licences=licences)
