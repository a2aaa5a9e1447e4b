"""Time series: one device's raw readings, and bucketed aggregates per device or city."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Query, Request, Response

from datahub import privacy
from datahub.api import metering, query, render
from datahub.api.auth import Access
from datahub.api.deps import (
    ANONYMOUS_TOO,
    Conn,
    LoopConn,
    Metered,
    MetricIndexDep,
    SettingsDep,
    ViewDep,
)
from datahub.api.licences import licences_of, licences_out, link_licences
from datahub.api.query import Grouping
from datahub.api.routes.devices import find_device, find_series_device, require_series
from datahub.api.schemas import (
    CSV_RESPONSE,
    AggregateOut,
    AggregateQuery,
    ReadingPageOut,
    ReadingsQuery,
    error_responses,
)
from datahub.errors import BadRequest, Gone, NotFound, Withheld
from datahub.privacy import PrivacyClass, View
from datahub.storage import access, devices, readings, retention
from datahub.storage.buckets import AggregateFn, CityScope, DeviceScope, floor_to
from datahub.storage.readings import BucketRow
from datahub.storage.retention import RawLimit
from datahub.storage.rollups import HOUR

router = APIRouter(tags=["readings"])


@router.get(
    "/v1/devices/{dev_eui}/readings",
    response_model=ReadingPageOut,
    responses={**CSV_RESPONSE, **error_responses(400, 401, 404, 409, 410, 422, 429, 503)},
    openapi_extra=ANONYMOUS_TOO,
)
async def list_device_readings(
    dev_eui: str,
    params: Annotated[ReadingsQuery, Query()],
    request: Request,
    conn: LoopConn,
    settings: SettingsDep,
    metric_index: MetricIndexDep,
    meter: Metered,
) -> Response:
    """List one device's raw readings in [from, to), ascending by time, then metric.

    Without `metric`, every metric the device has reported. The range defaults to the
    24 h before `to` (default now) and may span at most `api.max_raw_range_days`.
    Pages are walked with `cursor`: pass the `next_cursor` of a page to get the next one
    (in CSV, follow the `Link: <url>; rel="next"` header); it is null on the last page.
    400 for an unknown metric, from not before to, a range too long, a bad cursor or
    dev_eui, or a limit over the maximum; 404 for a device unknown or not visible to the
    caller. Each reading counts as one observation of the device's dataset.
    403 `Withheld` for a personal device shown by its public id: its readings are
    published only as aggregates over at least `privacy.k_min` such devices
    (docs/privacy.md).
    """
    metric = query.check_metric(params.metric, metric_index) if params.metric else None
    start, end = query.time_range(params.start, params.end, now=datetime.now(UTC))
    query.check_raw_range(start, end, max_days=settings.api.max_raw_range_days)
    limit = query.page_size(params.limit, settings.api)
    after = query.decode_reading_cursor(params.cursor) if params.cursor else None
    # The hottest route: two statements, made on the event loop (docs/performance.md).
    series = await find_series_device(conn, dev_eui, meter.caller, now=datetime.now(UTC))
    device = series.device
    require_series(device, settings.privacy.k_min)
    refuse_unkept(series.raw_limit, start=start, end=end, needs="a raw series", rollups_serve=False)
    rows = await readings.readings_statement(
        device_id=device.id,
        metric=metric,
        start=start,
        end=end,
        after=after,
        limit=limit + 1,
    ).run_async(conn)
    page, more = query.split_page(rows, limit)
    licences = licences_out([series.licence])
    meter.charge({device.dataset_id: len(page)})
    next_cursor = query.encode_reading_cursor(page[-1].time, page[-1].metric) if more else None
    next_url = render.next_page_url(request, settings, next_cursor)
    metrics = {r.metric for r in page}
    unit = {m: metric_index.unit(m) for m in metrics}
    # Each value at the resolution the device's profile declares; stored values unchanged.
    rounded = {m: metric_index.rounder(device.profile, m) for m in metrics}
    if render.wants_csv(request, params.format):
        csv = render.csv_response(
            ("time", "metric", "value", "unit"),
            ((r.time, r.metric, rounded[r.metric](r.value), unit[r.metric]) for r in page),
            next_url=next_url,
        )
        link_licences(csv, licences)
        return csv
    # Hundreds of readings: rendered straight to JSON in `ReadingPageOut`'s shape, without
    # a model per reading (tests/api/test_api_readings.py checks the body against it).
    body = render.json_response(
        {
            "dev_eui": device.shown_id,
            "from": start.astimezone(UTC),
            "to": end.astimezone(UTC),
            "items": [
                {
                    "time": r.time.astimezone(UTC),
                    "metric": r.metric,
                    "value": rounded[r.metric](r.value),
                    "unit": unit[r.metric],
                    "decoder": r.decoder,
                }
                for r in page
            ],
            "next_cursor": next_cursor,
            "licences": licences,
        }
    )
    render.set_next_link(body, next_url)
    return body


@router.get(
    "/v1/readings/aggregate",
    response_model=AggregateOut,
    responses={**CSV_RESPONSE, **error_responses(400, 401, 404, 409, 410, 422, 429, 503)},
    openapi_extra=ANONYMOUS_TOO,
)
def aggregate_readings(
    params: Annotated[AggregateQuery, Query()],
    request: Request,
    conn: Conn,
    settings: SettingsDep,
    metric_index: MetricIndexDep,
    meter: Metered,
    view: ViewDep,
) -> Response:
    """Aggregate one metric into time buckets, for one device or for a city.

    Pass either `device` (one series) or `city`; with `city`, `group=city` (default) gives
    one city-wide series and `group=device` one series per device with readings.
    Buckets are aligned like TimescaleDB's `time_bucket` (origin Monday 2000-01-03 UTC, so
    `1d` buckets start at midnight UTC); a point's `time` is its bucket's start, and only
    buckets holding readings appear. `count` is the number of readings in a bucket.
    The range defaults to the 24 h before `to` (default now); it may span at most
    `api.max_buckets` buckets.
    `fn=delta` is for counters (a running total such as `people_in`): the sum of the
    increases of the readings in each bucket, each over the reading before it; a drop is
    counted as a reset to zero, or as a wrap-around when the counter's width is known and
    it dropped from the top quarter of its range to the bottom quarter.
    400 for an unknown metric, from not before to, too many buckets, neither or both of
    `device` and `city`, `group=city` with `device`, or `fn=delta` of a metric that is
    not a counter (of the device's profile); 404 for a device unknown or not visible to
    the caller. A city's series aggregate only the devices the caller may see (filter
    further by `dataset`). Each point counts as `fairshare.aggregate_point_weight`
    observations of every dataset whose readings it holds.
    For a caller without a grant for their dataset (docs/privacy.md), personal devices
    (counting people, parking on private ground): 403 `Withheld` for one of them, and for
    a city-wide series holding fewer than `privacy.k_min` of them; with `group=device`,
    their series are left out. Devices of private owners appear by their public ids.
    """
    metric = query.check_metric(params.metric, metric_index)
    counters = metric_index.counter_profiles(metric) if params.fn is AggregateFn.DELTA else None
    if counters is not None and not counters:
        raise BadRequest(f"fn=delta needs a counter metric; {metric!r} is not a counter")
    start, end = query.time_range(params.start, params.end, now=datetime.now(UTC))
    query.check_bucket_count(start, end, params.bucket, max_buckets=settings.api.max_buckets)
    if params.device is not None and params.city is not None:
        raise BadRequest("pass either device or city, not both")
    empty: dict[str, Any] | None
    if params.device is not None:
        if params.group is Grouping.CITY:
            raise BadRequest("group=city needs city=, not device=; drop group or pass city")
        if params.dataset is not None:
            raise BadRequest("dataset= filters a city's devices; drop it with device=")
        device = find_device(conn, params.device, meter.caller)
        require_series(device, settings.privacy.k_min)
        if counters is not None and device.profile not in counters:
            raise BadRequest(
                f"fn=delta needs a counter metric; {metric!r} is not a counter of "
                f"{device.dev_eui}'s profile {device.profile}"
            )
        check_raw_kept(
            conn,
            start=start,
            end=end,
            needs=_raw_need(params.fn, params.bucket),
            device_id=device.id,
            rollups_serve=_rollups_serve(params.fn, params.bucket),
        )
        rows = readings.select_buckets(
            conn,
            scope=DeviceScope(device.id),
            metric=metric,
            start=start,
            end=end,
            width=params.bucket.width,
            fn=params.fn,
            counters=counters,
        )
        empty = {"device": device.shown_id, "city": device.city, "points": []}
    elif params.city is not None:
        per_device = params.group is Grouping.DEVICE
        visible = _visible(conn, meter.caller.dataset_ids, params.dataset)
        if not per_device:
            _check_enough_personal(
                conn,
                meter.caller,
                params.city,
                metric_index.profiles_reporting(metric),
                visible,
                view=view,
                metric=metric,
            )
        check_raw_kept(
            conn,
            start=start,
            end=end,
            needs=_raw_need(params.fn, params.bucket),
            city=params.city,
            dataset_ids=visible,
            rollups_serve=_rollups_serve(params.fn, params.bucket),
        )
        rows = readings.select_buckets(
            conn,
            scope=CityScope(params.city, per_device=per_device, dataset_ids=visible),
            metric=metric,
            start=start,
            end=end,
            width=params.bucket.width,
            fn=params.fn,
            counters=counters,
        )
        empty = None if per_device else {"device": None, "city": params.city, "points": []}
    else:
        raise BadRequest("pass device (a DevEUI) or city")
    weight = settings.fairshare.aggregate_point_weight
    served = metering.count_by_dataset((d for r in rows for d in r.datasets), weight=weight)
    licences = licences_of(conn, served)  # every read before the charge (api/metering.py)
    if params.device is not None or params.group is Grouping.DEVICE:
        rows = _shown_series(conn, rows, meter.caller.granted_ids)
    meter.charge(served)
    series = _series(rows) or ([empty] if empty is not None else [])
    if render.wants_csv(request, params.format):
        csv = render.csv_response(
            ("device", "city", "time", "value", "count"),
            (
                (s["device"], s["city"], p["time"], p["value"], p["count"])
                for s in series
                for p in s["points"]
            ),
        )
        link_licences(csv, licences)
        return csv
    return render.json_response(
        {
            "metric": metric,
            "unit": metric_index.unit(metric),
            "bucket": params.bucket,
            "fn": params.fn,
            "from": start.astimezone(UTC),
            "to": end.astimezone(UTC),
            "series": series,
            "licences": licences,
        }
    )


def _visible(
    conn: psycopg.Connection, visible: tuple[int, ...] | None, dataset: str | None
) -> tuple[int, ...] | None:
    """Narrow the datasets a caller may see to the one named by `dataset`, if any."""
    if dataset is None:
        return visible
    found = access.dataset_id(conn, slug=dataset)
    if found is None or (visible is not None and found not in visible):
        raise NotFound(f"no dataset has slug {dataset!r}")
    return (found,)


def _check_enough_personal(
    conn: psycopg.Connection,
    caller: Access,
    city: str,
    profiles: Sequence[str],
    visible: tuple[int, ...] | None,
    *,
    view: View,
    metric: str,
) -> None:
    """Withhold a city-wide series holding readings of fewer than k protected personal
    devices (403)."""
    personal = devices.count_protected_personal(
        conn, city=city, profiles=profiles, dataset_ids=visible, granted=caller.granted_ids
    )
    if not view.enough_devices(personal):
        reason = privacy.withheld_reason(metric, personal, view.k_min)
        raise Withheld(f"the series of {city}: {reason}")


def _shown_series(
    conn: psycopg.Connection, rows: Sequence[BucketRow], granted: frozenset[int] | None
) -> list[BucketRow]:
    """The per-device series as the caller sees them: each by the id its device is shown
    by, ordered by it, without those of protected personal devices."""
    shown = devices.select_shown(
        conn, dev_euis={r.dev_eui for r in rows if r.dev_eui is not None}, granted=granted
    )
    kept = []
    for row in rows:
        device = shown[row.dev_eui] if row.dev_eui is not None else None
        if device is None:
            continue
        if not privacy.shows_series(PrivacyClass(device.privacy), device.protected):
            continue
        row.dev_eui = device.shown_id
        kept.append(row)
    # Stable: each series' buckets stay in time order.
    kept.sort(key=lambda r: (r.dev_eui or "", r.city))
    return kept


def _series(rows: Sequence[BucketRow]) -> list[dict[str, Any]]:
    """Group bucket rows, ordered by series, into one series each, in `SeriesOut`'s shape.

    Thousands of points: plain values rendered straight to JSON, not a model per point
    (tests/api/test_api_aggregate.py checks the body against the models).
    """
    return [
        {
            "device": dev_eui,
            "city": city,
            "points": [
                {"time": r.time.astimezone(UTC), "value": r.value, "count": r.count} for r in group
            ],
        }
        for (dev_eui, city), group in itertools.groupby(rows, key=lambda r: (r.dev_eui, r.city))
    ]


def _rollups_serve(fn: AggregateFn, bucket: query.Bucket) -> bool:
    """Whether the rollups answer these buckets (whole hours of a function with partials)."""
    return fn.has_partials and bucket.width >= HOUR and not bucket.width % HOUR


def _raw_need(fn: AggregateFn, bucket: query.Bucket) -> str:
    if not fn.has_partials:
        return f"fn={fn.value}"
    if not _rollups_serve(fn, bucket):
        return f"bucket={bucket.value}"
    return "a range that does not start and end on the hour"


def check_raw_kept(
    conn: psycopg.Connection,
    *,
    start: datetime,
    end: datetime,
    needs: str,
    device_id: int | None = None,
    city: str | None = None,
    dataset_ids: Sequence[int] | None = None,
    rollups_serve: bool = False,
) -> None:
    """Refuse (410) a query that needs raw readings from before a dataset's retention.

    With `rollups_serve`, whole hours come from the rollups, which are kept: only partial
    hours at either end need readings.
    """
    limit = retention.raw_limit_statement(
        now=datetime.now(UTC),
        device_id=device_id,
        city=city,
        dataset_ids=list(dataset_ids) if dataset_ids is not None else None,
    ).run(conn)
    refuse_unkept(limit, start=start, end=end, needs=needs, rollups_serve=rollups_serve)


def refuse_unkept(
    limit: RawLimit | None, *, start: datetime, end: datetime, needs: str, rollups_serve: bool
) -> None:
    """Refuse (410) a query of [start, end) that needs raw readings from before `limit`."""
    if limit is None:
        return
    if rollups_serve:
        if start != floor_to(start, HOUR) and start < limit.before:
            raw_before = start
        elif end != floor_to(end, HOUR) and floor_to(end, HOUR) < limit.before:
            raw_before = floor_to(end, HOUR)
        else:
            return
    else:
        raw_before = start
    if raw_before < limit.before:
        raise Gone(
            f"dataset {limit.dataset} keeps raw readings {limit.days} days, so none before "
            f"{query.format_time(limit.before)} are left; {needs} needs them. Aggregates "
            "of whole hours (bucket=1h or 1d, fn avg, min, max, sum, count or last, from "
            "and to on the hour) are answered from the rollups for any range"
        )
