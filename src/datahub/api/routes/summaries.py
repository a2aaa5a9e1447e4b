"""Open summaries citizens ask about: waste bins per district, free parking per zone.

They draw on datasets that are open or whose supplier allows open summaries, and show a
cell only when at least `opendata.min_cell_devices` devices, and never fewer than
`privacy.k_min`, stand behind it (docs/privacy.md). Whoever asks, they are anonymous
public-interest use, metered to the datasets they draw on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import psycopg
from fastapi import APIRouter, Query, Request

from datahub.api.deps import ANONYMOUS_TOO, Conn, MetricIndexDep, PublicMetered, SettingsDep
from datahub.api.licences import licences_of
from datahub.api.metering import count_by_dataset
from datahub.api.metric_index import MetricIndex
from datahub.api.opendata_schemas import (
    ParkingCellOut,
    ParkingHourOut,
    ParkingSummaryOut,
    SummaryQuery,
    WasteCellOut,
    WasteSummaryOut,
)
from datahub.api.schemas import error_responses
from datahub.domain import City
from datahub.opendata import summaries
from datahub.storage import buckets, readings
from datahub.storage import summaries as summary_storage
from datahub.storage.buckets import AggregateFn, CityScope

router = APIRouter(tags=["open data"])

HOUR = timedelta(hours=1)
LEVEL_METRIC = "distance"
PARKING_METRIC = "occupancy"


@router.get(
    "/v1/summaries/waste",
    response_model=WasteSummaryOut,
    responses=error_responses(401, 422, 429, 503),
    openapi_extra=ANONYMOUS_TOO,
)
def waste_summary(
    params: Annotated[SummaryQuery, Query()],
    request: Request,
    conn: Conn,
    settings: SettingsDep,
    metric_index: MetricIndexDep,
    meter: PublicMetered,
) -> WasteSummaryOut:
    """Public waste bins per district: how many report, and the share filled above 80 %.

    A bin's fill is its level sensor's newest reading within its calibrated range
    (registry: level_empty, level_full); bins without a reading in the last
    `opendata.summary_max_age_hours` or without calibration are not counted. A district
    with fewer than `k` bins is listed with `shown` false and no figures. Each bin's
    reading counts as one observation of its dataset, as public-interest use.
    """
    now = datetime.now(UTC)
    k = max(settings.opendata.min_cell_devices, settings.privacy.k_min)
    devices, latest = _latest(conn, metric_index, LEVEL_METRIC, params.city)
    since = now - timedelta(hours=settings.opendata.summary_max_age_hours)
    cells = summaries.waste_cells(devices, latest, since=since)
    counted = [r for r in latest if r.dev_eui in devices and r.time >= since]
    meter.charge(count_by_dataset(r.dataset_id for r in counted))
    return WasteSummaryOut(
        k=k,
        full_above=summaries.FULL_ABOVE,
        as_of=now,
        cells=[
            WasteCellOut(
                city=City(c.city),
                area=c.area,
                bins=c.bins if c.bins >= k else None,
                full_share=round(c.full / c.bins, 3) if c.bins >= k else None,
                shown=c.bins >= k,
            )
            for c in cells
        ],
        licences=licences_of(conn, {r.dataset_id for r in counted}),
    )


@router.get(
    "/v1/summaries/parking",
    response_model=ParkingSummaryOut,
    responses=error_responses(401, 422, 429, 503),
    openapi_extra=ANONYMOUS_TOO,
)
def parking_summary(
    params: Annotated[SummaryQuery, Query()],
    request: Request,
    conn: Conn,
    settings: SettingsDep,
    metric_index: MetricIndexDep,
    meter: PublicMetered,
) -> ParkingSummaryOut:
    """Free parking bays per zone: now, and hour by hour over the last 24 hours.

    Now: the bays whose newest state is at most `opendata.summary_max_age_hours` old, and
    how many of them are free. Per hour: the bays that reported, and the free bays on
    average over the hour. A zone with fewer than `k` bays now is listed with `shown`
    false and nothing else; an hour with fewer than `k` bays is left out. Each state and
    each hourly point counts as observations of its dataset, as public-interest use.
    """
    now = datetime.now(UTC)
    k = max(settings.opendata.min_cell_devices, settings.privacy.k_min)
    devices, latest = _latest(conn, metric_index, PARKING_METRIC, params.city)
    since = now - timedelta(hours=settings.opendata.summary_max_age_hours)
    end = buckets.floor_to(now, HOUR) + HOUR
    dataset_ids = sorted({d.dataset_id for d in devices.values()})
    hours = [
        row
        for city in sorted({d.city for d in devices.values()})
        for row in readings.select_buckets(
            conn,
            metric=PARKING_METRIC,
            start=end - 24 * HOUR,
            end=end,
            width=HOUR,
            fn=AggregateFn.AVG,
            scope=CityScope(city, per_device=True, dataset_ids=tuple(dataset_ids)),
        )
    ]
    hours = [h for h in hours if h.dev_eui in devices]
    cells = summaries.parking_cells(devices, latest, hours, since=since, k=k)
    counted = [r for r in latest if r.dev_eui in devices and r.time >= since]
    served = count_by_dataset(r.dataset_id for r in counted)
    for dataset_id, n in count_by_dataset(
        (d for h in hours for d in h.datasets), weight=settings.fairshare.aggregate_point_weight
    ).items():
        served[dataset_id] = served.get(dataset_id, 0) + n
    meter.charge(served)
    return ParkingSummaryOut(
        k=k,
        as_of=now,
        cells=[
            ParkingCellOut(
                city=City(c.city),
                area=c.area,
                bays=c.bays if c.bays >= k else None,
                free=c.free if c.bays >= k else None,
                hours=[ParkingHourOut(time=h.time, bays=h.bays, free=h.free) for h in c.hours]
                if c.bays >= k
                else [],
                shown=c.bays >= k,
            )
            for c in cells
        ],
        licences=licences_of(conn, served),
    )


def _latest(
    conn: psycopg.Connection, metric_index: MetricIndex, metric: str, city: City | None
) -> tuple[dict[str, summary_storage.SummaryDevice], list[readings.LatestRow]]:
    """The summarisable devices reporting `metric` (of one city), and their newest values."""
    profiles = metric_index.profiles_reporting(metric)
    datasets = summary_storage.select_summary_datasets(conn)
    city_name = city.value if city is not None else None
    devices = summary_storage.select_devices(
        conn, dataset_ids=datasets, profiles=profiles, city=city_name
    )
    latest = readings.select_latest(
        conn,
        metrics_of={p: [metric] for p in profiles},
        city=city_name,
        dataset_ids=datasets,
    )
    return devices, latest
