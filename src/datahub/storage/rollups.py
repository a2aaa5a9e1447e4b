"""Rollups: hourly and daily partial aggregates of `reading`, kept by the service itself.

TimescaleDB's Apache build has no continuous aggregates (and plain PostgreSQL none at all),
so datahub keeps `reading_hourly` and `reading_daily`: per device, metric and bucket the
count, sum, min, max and last value with its time. Whoever writes readings marks the
(device, hour) pairs in `rollup_dirty` in the same transaction (`mark_dirty`); `refresh`
recomputes marked hours from `reading`, then their days from the hours. Queries use a
rollup row only while no mark covers it, and aggregate the marked hours from `reading`,
so answers are exact at any moment, also right after late or re-decoded readings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Equal to storage.readings.BUCKET_ORIGIN: rollup buckets line up with the queries' buckets.
ORIGIN = datetime.fromisoformat("2000-01-03T00:00:00+00:00")
# One refresher at a time; an arbitrary key of the advisory lock namespace ("rollup").
REFRESH_LOCK = 0x726F6C6C7570

# fn -> how the partials of one bucket (p.count, p.sum, ...) become its value.
_MERGE = {
    "avg": "sum(p.sum) / sum(p.count)",
    "min": "min(p.min)",
    "max": "max(p.max)",
    "sum": "sum(p.sum)",
    "count": "sum(p.count)::float8",
    "last": "(array_agg(p.last_value ORDER BY p.last_time DESC))[1]",
}


def floor_to(time: datetime, width: timedelta) -> datetime:
    """The start of the bucket of `width` holding `time`, as `date_bin` computes it."""
    return ORIGIN + ((time - ORIGIN) // width) * width


def ceil_to(time: datetime, width: timedelta) -> datetime:
    """The first bucket start of `width` at or after `time`."""
    start = floor_to(time, width)
    return start if start == time else start + width


def mark_dirty(conn: psycopg.Connection, *, keys: Sequence[tuple[int, datetime]]) -> int:
    """Mark the hours of readings, as (device id, time) pairs, for recomputation.

    Call it in the transaction that writes the readings; return how many hours were marked.
    """
    if not keys:
        return 0
    # The hours are computed by the database: no Python work per reading on the ingest path.
    cur = conn.execute(
        """
        INSERT INTO rollup_dirty (device_id, hour)
        SELECT DISTINCT k.device_id, date_bin('1 hour', k.time, %(origin)s)
        FROM unnest(%(ids)s::int[], %(times)s::timestamptz[]) AS k (device_id, time)
        """,
        {"ids": [d for d, _ in keys], "times": [t for _, t in keys], "origin": ORIGIN},
    )
    return cur.rowcount


def count_dirty(conn: psycopg.Connection) -> int:
    """Return how many marks wait for the refresher."""
    row = conn.execute("SELECT count(*) FROM rollup_dirty").fetchone()
    return int(row[0]) if row else 0


def refresh(conn: psycopg.Connection, *, limit: int = 20_000) -> int | None:
    """Recompute the rollups of up to `limit` marks, in the caller's transaction.

    Return how many marks were cleared, or None when another refresher holds the lock.
    The marks are taken first, in their own statement: a reading committed after that has
    a mark of its own, left for the next round, so no change is ever lost.
    """
    locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (REFRESH_LOCK,)).fetchone()
    if not locked or not locked[0]:
        return None
    marks = conn.execute(
        """
        DELETE FROM rollup_dirty
        WHERE ctid = ANY(ARRAY(SELECT ctid FROM rollup_dirty LIMIT %s))
        RETURNING device_id, hour
        """,
        (limit,),
    ).fetchall()
    if not marks:
        return 0
    hours = sorted(set(marks))
    days = sorted({(device_id, floor_to(hour, DAY)) for device_id, hour in hours})
    _recompute(conn, "reading_hourly", hours, HOUR)
    _recompute(conn, "reading_daily", days, DAY)
    return len(marks)


def _recompute(
    conn: psycopg.Connection,
    table: str,
    keys: list[tuple[int, datetime]],
    width: timedelta,
) -> None:
    # Hours come from the raw readings, days from their hours; a bucket left without
    # readings (all re-decoded away) loses its row.
    if table == "reading_hourly":
        source = sql.SQL(
            """
            SELECT r.device_id, r.metric, k.bucket, count(*), sum(r.value), min(r.value),
                   max(r.value), max(r.time), (array_agg(r.value ORDER BY r.time DESC))[1]
            FROM k JOIN reading r
              ON r.device_id = k.device_id AND r.time >= k.bucket AND r.time < k.bucket + %(w)s
            -- constant bounds too: TimescaleDB then plans only the chunks that hold them
            WHERE r.time >= %(lo)s AND r.time < %(hi)s
            GROUP BY 1, 2, 3
            """
        )
    else:
        source = sql.SQL(
            """
            SELECT h.device_id, h.metric, k.bucket, sum(h.count), sum(h.sum), min(h.min),
                   max(h.max), max(h.last_time),
                   (array_agg(h.last_value ORDER BY h.last_time DESC))[1]
            FROM k JOIN reading_hourly h
              ON h.device_id = k.device_id AND h.bucket >= k.bucket AND h.bucket < k.bucket + %(w)s
            GROUP BY 1, 2, 3
            """
        )
    keyset = sql.SQL(
        "WITH k AS (SELECT * FROM unnest(%(ids)s::int[], %(buckets)s::timestamptz[])"
        " AS k (device_id, bucket))"
    )
    params = {
        "ids": [d for d, _ in keys],
        "buckets": [b for _, b in keys],
        "w": width,
        "lo": min(b for _, b in keys),
        "hi": max(b for _, b in keys) + width,
    }
    conn.execute(
        sql.SQL(
            "{keyset} DELETE FROM {table} t USING k"
            " WHERE t.device_id = k.device_id AND t.bucket = k.bucket"
        ).format(keyset=keyset, table=sql.Identifier(table)),
        params,
    )
    conn.execute(
        sql.SQL("{keyset} INSERT INTO {table} {source}").format(
            keyset=keyset, table=sql.Identifier(table), source=source
        ),
        params,
    )


def rebuild(conn: psycopg.Connection, *, start: datetime, end: datetime) -> None:
    """Recompute every rollup of the whole days overlapping [start, end) from `reading`.

    For bulk loads that bypass `mark_dirty`; clears the marks of those days.
    """
    start, end = floor_to(start, DAY), ceil_to(end, DAY)
    params = {"start": start, "end": end, "origin": ORIGIN}
    for table in ("reading_daily", "reading_hourly"):
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE bucket >= %(start)s AND bucket < %(end)s").format(
                sql.Identifier(table)
            ),
            params,
        )
    conn.execute(
        """
        INSERT INTO reading_hourly
        SELECT device_id, metric, date_bin('1 hour', time, %(origin)s), count(*), sum(value),
               min(value), max(value), max(time), (array_agg(value ORDER BY time DESC))[1]
        FROM reading
        WHERE time >= %(start)s AND time < %(end)s
        GROUP BY 1, 2, 3
        """,
        params,
    )
    conn.execute(
        """
        INSERT INTO reading_daily
        SELECT device_id, metric, date_bin('1 day', bucket, %(origin)s), sum(count), sum(sum),
               min(min), max(max), max(last_time),
               (array_agg(last_value ORDER BY last_time DESC))[1]
        FROM reading_hourly
        WHERE bucket >= %(start)s AND bucket < %(end)s
        GROUP BY 1, 2, 3
        """,
        params,
    )
    conn.execute("DELETE FROM rollup_dirty WHERE hour >= %(start)s AND hour < %(end)s", params)


def select_buckets(
    conn: psycopg.Connection,
    *,
    series: sql.Composable,
    scope: sql.Composable,
    fn: str,
    start: datetime,
    end: datetime,
    width: timedelta,
    params: Mapping[str, Any],
) -> list[tuple[Any, ...]] | None:
    """Aggregate from the rollups, or return None when they cannot serve the query.

    They serve `fn` avg, min, max, sum, count and last in buckets of whole hours. Rows are
    (series, city, bucket, value, count, dataset ids), as `readings.select_buckets` returns.
    Whole days inside [start, end) come from `reading_daily` (when the width is whole days),
    the other whole hours from `reading_hourly`, and from `reading` the partial hours at
    either end plus every hour marked dirty (and the days holding one come from the hours).
    `scope` filters the devices `d`; `params` fill its placeholders and `metric`.
    """
    if fn not in _MERGE or width < HOUR or width % HOUR:
        return None
    hour_start, hour_end = ceil_to(start, HOUR), floor_to(end, HOUR)
    if hour_start >= hour_end:
        return None
    if width % DAY == timedelta(0):
        day_start, day_end = ceil_to(hour_start, DAY), floor_to(hour_end, DAY)
        if day_start >= day_end:
            day_start = day_end = hour_start
    else:
        day_start = day_end = hour_start
    # Only fn=last needs the ordered aggregate of last values, which sorts its input.
    last = _MERGE["last"] if fn == "last" else "NULL::float8"
    query = sql.SQL(_ROLLUP_QUERY).format(
        series=series, scope=scope, value=sql.SQL(_MERGE[fn]), last=sql.SQL(last)
    )
    rows = conn.execute(
        query,
        {
            **params,
            "start": start,
            "end": end,
            "hour_start": hour_start,
            "hour_end": hour_end,
            "day_start": day_start,
            "day_end": day_end,
            "width": width,
            "origin": ORIGIN,
        },
    ).fetchall()
    return rows


# Partials of every part of [start, end): a raw reading is a partial of one. Each branch
# reads one plain range of a key (device, metric, bucket or time), so that a city's query
# is one short index range scan per device and rollup, never a filter over every hour.
_ROLLUP_QUERY = """
WITH scoped AS (
    SELECT d.id, d.dev_eui, d.city, d.dataset_id FROM device d WHERE {scope}
), dirty AS (
    SELECT DISTINCT x.device_id, x.hour
    FROM rollup_dirty x JOIN scoped s ON s.id = x.device_id
    WHERE x.hour >= %(hour_start)s AND x.hour < %(hour_end)s
), dirty_day AS (
    SELECT DISTINCT device_id, date_bin('1 day', hour, %(origin)s) AS day
    FROM dirty
    WHERE hour >= %(day_start)s AND hour < %(day_end)s
), parts AS (
    -- whole days, unless an hour of the day is marked
    SELECT y.device_id, y.bucket AS time, y.count, y.sum, y.min, y.max, y.last_time,
           y.last_value
    FROM scoped s JOIN reading_daily y ON y.device_id = s.id
    WHERE y.metric = %(metric)s AND y.bucket >= %(day_start)s AND y.bucket < %(day_end)s
      AND NOT EXISTS (
          SELECT 1 FROM dirty_day z WHERE z.device_id = y.device_id AND z.day = y.bucket)
    UNION ALL
    -- whole hours before the first whole day, after the last, and of the marked days;
    -- marked hours themselves come from the readings below
    SELECT h.device_id, h.bucket, h.count, h.sum, h.min, h.max, h.last_time, h.last_value
    FROM (
        SELECT s.id AS device_id, %(hour_start)s::timestamptz AS lo,
               %(day_start)s::timestamptz AS hi
        FROM scoped s
        UNION ALL
        SELECT s.id, %(day_end)s, %(hour_end)s FROM scoped s
        UNION ALL
        SELECT z.device_id, z.day, z.day + INTERVAL '1 day' FROM dirty_day z
    ) AS w
    JOIN reading_hourly h
      ON h.device_id = w.device_id AND h.metric = %(metric)s
     AND h.bucket >= w.lo AND h.bucket < w.hi
    WHERE w.lo < w.hi
      AND NOT EXISTS (
          SELECT 1 FROM dirty x WHERE x.device_id = h.device_id AND x.hour = h.bucket)
    UNION ALL
    -- the partial hours at either end, from the readings
    SELECT r.device_id, r.time, 1, r.value, r.value, r.value, r.time, r.value
    FROM scoped s JOIN reading r ON r.device_id = s.id
    WHERE r.metric = %(metric)s AND r.time >= %(start)s AND r.time < %(hour_start)s
    UNION ALL
    SELECT r.device_id, r.time, 1, r.value, r.value, r.value, r.time, r.value
    FROM scoped s JOIN reading r ON r.device_id = s.id
    WHERE r.metric = %(metric)s AND r.time >= %(hour_end)s AND r.time < %(end)s
    UNION ALL
    -- the marked hours, from the readings
    SELECT r.device_id, r.time, 1, r.value, r.value, r.value, r.time, r.value
    FROM dirty x JOIN reading r
      ON r.device_id = x.device_id AND r.metric = %(metric)s
     AND r.time >= x.hour AND r.time < x.hour + INTERVAL '1 hour'
    WHERE r.time >= %(hour_start)s AND r.time < %(hour_end)s
), per_dataset AS (
    -- Merged per bucket and dataset first: a hash aggregate, where one step with
    -- array_agg(DISTINCT dataset) would sort every partial (90,000 for a city's 90 days).
    SELECT {series} AS series, d.city, date_bin(%(width)s, p.time, %(origin)s) AS bucket,
           d.dataset_id, sum(p.count) AS count, sum(p.sum) AS sum, min(p.min) AS min,
           max(p.max) AS max, max(p.last_time) AS last_time, {last} AS last_value
    FROM parts p JOIN scoped d ON d.id = p.device_id
    GROUP BY 1, 2, 3, 4
)
SELECT p.series, p.city, p.bucket, {value}, sum(p.count)::bigint,
       array_agg(p.dataset_id ORDER BY p.dataset_id)
FROM per_dataset p
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""
