"""The newest value of every device and metric."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from datahub.api import metering, query, render
from datahub.api.deps import ANONYMOUS_TOO, Conn, Metered, MetricIndexDep, ViewDep
from datahub.api.licences import licences_of, link_licences
from datahub.api.schemas import CSV_RESPONSE, LatestListOut, LatestQuery, error_responses
from datahub.privacy import PrivacyClass
from datahub.storage import readings

router = APIRouter(tags=["readings"])


@router.get(
    "/v1/latest",
    response_model=LatestListOut,
    responses={**CSV_RESPONSE, **error_responses(400, 401, 409, 422, 429, 503)},
    openapi_extra=ANONYMOUS_TOO,
)
def list_latest(
    params: Annotated[LatestQuery, Query()],
    request: Request,
    conn: Conn,
    metric_index: MetricIndexDep,
    meter: Metered,
    view: ViewDep,
) -> Response:
    """List the newest reading of each device and metric, by DevEUI, then metric.

    The (device, metric) pairs are those of each device's profile; a pair without any
    reading is left out. Only devices the caller may see are listed; filter further by
    `city`, `supplier`, `dataset` (slugs) and `metric`. Each value counts as one
    observation of its device's dataset. 400 for an unknown metric.
    A caller without a grant for a dataset sees its private owners' devices by public id,
    after the others, and none of its personal devices (docs/privacy.md).
    """
    metric = query.check_metric(params.metric, metric_index) if params.metric else None
    latest = readings.select_latest(
        conn,
        metrics_of={
            profile: [m for m in metrics if metric is None or m == metric]
            for profile, metrics in metric_index.profile_metrics.items()
        },
        city=params.city,
        supplier=params.supplier,
        dataset=params.dataset,
        dataset_ids=meter.caller.dataset_ids,
        granted=meter.caller.granted_ids,
    )
    served = metering.count_by_dataset(row.dataset_id for row in latest)
    licences = licences_of(conn, served)  # every read before the charge (api/metering.py)
    meter.charge(served)
    units = {m: metric_index.unit(m) for m in {row.metric for row in latest}}
    # Each value at the resolution its profile declares; stored values stay as they are.
    rounders = {
        pair: metric_index.rounder(*pair) for pair in {(row.profile, row.metric) for row in latest}
    }
    # Thousands of values: rendered straight to JSON in `LatestOut`'s shape, without a
    # model per value (tests/api/test_api_latest.py checks the body against the models).
    items = [
        {
            "dev_eui": row.shown_id,
            "name": view.name(row.name, row.shown_id, PrivacyClass(row.privacy), row.protected),
            "city": row.city,
            "metric": row.metric,
            "unit": units[row.metric],
            "time": row.time.astimezone(UTC),
            "value": rounders[row.profile, row.metric](row.value),
        }
        for row in latest
    ]
    if render.wants_csv(request, params.format):
        csv = render.csv_response(
            ("dev_eui", "name", "city", "metric", "unit", "time", "value"),
            (tuple(i.values()) for i in items),
        )
        link_licences(csv, licences)
        return csv
    return render.json_response({"items": items, "licences": licences})
