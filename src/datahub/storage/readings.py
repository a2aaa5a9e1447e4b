"""The reading table: normalized observations, one row per device, metric and time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import psycopg
from psycopg import sql


@dataclass(frozen=True, slots=True)
class ReadingRow:
    time: datetime
    device_id: int
    metric: str
    value: float


def insert_readings(conn: psycopg.Connection, *, rows: Sequence[ReadingRow]) -> int:
    """Store readings, skipping any already stored; return how many were new."""
    if not rows:
        return 0
    cur = conn.execute(
        """
        INSERT INTO reading (time, device_id, metric, value)
        SELECT * FROM unnest(%s::timestamptz[], %s::int[], %s::text[], %s::float8[])
        ON CONFLICT DO NOTHING
        """,
        (
            [r.time for r in rows],
            [r.device_id for r in rows],
            [r.metric for r in rows],
            [r.value for r in rows],
        ),
    )
    return cur.rowcount


class AggregateFn(StrEnum):
    """How the readings of one time bucket become one value."""

    AVG = "avg"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    LAST = "last"


_AGGREGATES = {
    AggregateFn.AVG: sql.SQL("avg(r.value)"),
    AggregateFn.MIN: sql.SQL("min(r.value)"),
    AggregateFn.MAX: sql.SQL("max(r.value)"),
    AggregateFn.SUM: sql.SQL("sum(r.value)"),
    AggregateFn.COUNT: sql.SQL("count(*)::float8"),
    # Standard SQL for TimescaleDB's last(value, time), so plain PostgreSQL runs it too.
    AggregateFn.LAST: sql.SQL("(array_agg(r.value ORDER BY r.time DESC))[1]"),
}

# date_bin's origin: a Monday, equal to TimescaleDB time_bucket's default origin, so
# buckets line up with TimescaleDB's, and 1d buckets start at midnight UTC.
BUCKET_ORIGIN = datetime.fromisoformat("2000-01-03T00:00:00+00:00")


@dataclass(frozen=True, slots=True)
class SeriesReading:
    time: datetime
    metric: str
    value: float


@dataclass(frozen=True, slots=True)
class BucketRow:
    """One time bucket of one series; `dev_eui` is None for a city-wide series."""

    dev_eui: str | None
    city: str
    time: datetime
    value: float
    count: int


@dataclass(frozen=True, slots=True)
class LatestRow:
    dev_eui: str
    name: str
    city: str
    metric: str
    time: datetime
    value: float


def select_readings(
    conn: psycopg.Connection,
    *,
    device_id: int,
    metric: str | None,
    start: datetime,
    end: datetime,
    after: tuple[datetime, str] | None = None,
    limit: int,
) -> list[SeriesReading]:
    """Select one device's readings in [start, end) by (time, metric), after a keyset position.

    `metric` None means every metric; `after` is the (time, metric) of the last row
    of the previous page.
    """
    where = [
        sql.SQL("r.device_id = %(device_id)s"),
        sql.SQL("r.time >= %(start)s"),
        sql.SQL("r.time < %(end)s"),
    ]
    params: dict[str, object] = {"device_id": device_id, "start": start, "end": end}
    if metric is not None:
        # Equality, not ANY(array): the key (device_id, metric, time) then yields rows in order.
        where.append(sql.SQL("r.metric = %(metric)s"))
        params["metric"] = metric
    if after is not None:
        where.append(sql.SQL("(r.time, r.metric) > (%(after_time)s, %(after_metric)s::text)"))
        params["after_time"], params["after_metric"] = after
    query = sql.SQL(
        """
        SELECT r.time, r.metric, r.value
        FROM reading r
        WHERE {where}
        ORDER BY r.time, r.metric
        LIMIT %(limit)s
        """
    ).format(where=sql.SQL(" AND ").join(where))
    params["limit"] = limit
    rows = conn.execute(query, params).fetchall()
    return [SeriesReading(*row) for row in rows]


def select_buckets(
    conn: psycopg.Connection,
    *,
    metric: str,
    start: datetime,
    end: datetime,
    width: timedelta,
    fn: AggregateFn,
    device_id: int | None = None,
    city: str | None = None,
    per_device: bool = True,
) -> list[BucketRow]:
    """Aggregate one metric in [start, end) into buckets of `width`, per device or per city.

    Select the readings of one device (`device_id`) or of every device of a `city`;
    only buckets holding readings are returned, ordered by series, then time.
    """
    if (device_id is None) == (city is None):
        raise ValueError("pass exactly one of device_id and city")
    if device_id is not None:
        scope = sql.SQL("d.id = %(device_id)s")
    else:
        scope = sql.SQL("d.city = %(city)s")
    series = sql.SQL("d.dev_eui" if per_device else "NULL::text")
    query = sql.SQL(
        """
        SELECT {series}, d.city, date_bin(%(width)s, r.time, %(origin)s) AS bucket,
               {value}, count(*)
        FROM reading r JOIN device d ON d.id = r.device_id
        WHERE r.metric = %(metric)s AND r.time >= %(start)s AND r.time < %(end)s AND {scope}
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        """
    ).format(series=series, value=_AGGREGATES[fn], scope=scope)
    rows = conn.execute(
        query,
        {
            "metric": metric,
            "start": start,
            "end": end,
            "width": width,
            "origin": BUCKET_ORIGIN,
            "device_id": device_id,
            "city": city,
        },
    ).fetchall()
    return [BucketRow(*row) for row in rows]


def select_latest(conn: psycopg.Connection, *, pairs: Sequence[tuple[int, str]]) -> list[LatestRow]:
    """Select the newest reading of each (device id, metric) pair that has any.

    One index probe per pair: the LATERAL subquery walks the reading key
    (device_id, metric, time) backwards and stops at the first row.
    """
    if not pairs:
        return []
    rows = conn.execute(
        """
        SELECT d.dev_eui, d.name, d.city, p.metric, l.time, l.value
        FROM unnest(%(device_ids)s::int[], %(metrics)s::text[]) AS p (device_id, metric)
        JOIN device d ON d.id = p.device_id
        CROSS JOIN LATERAL (
            SELECT r.time, r.value
            FROM reading r
            WHERE r.device_id = p.device_id AND r.metric = p.metric
            ORDER BY r.time DESC
            LIMIT 1
        ) AS l
        ORDER BY d.dev_eui, p.metric
        """,
        {"device_ids": [d for d, _ in pairs], "metrics": [m for _, m in pairs]},
    ).fetchall()
    return [LatestRow(*row) for row in rows]
