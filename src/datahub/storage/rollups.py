"""Rollups: hourly and daily partial aggregates of `reading`, kept by the service itself.

TimescaleDB's Apache build has no continuous aggregates (and plain PostgreSQL none at all),
so datahub keeps `reading_hourly` and `reading_daily`: per device, metric and bucket a
partial row (storage/buckets.py: count, sum, min, max and the last value with its time).
Whoever writes readings marks the (device, hour) pairs in `rollup_dirty` in the same
transaction (`mark_dirty`); `refresh` recomputes marked hours from `reading`, then their
days from the hours, and the newest reading of the marked devices' metrics
(`reading_latest`) from the hours, and the days of their cities and datasets
(`reading_city_daily`). Queries (`select_buckets`) use a rollup row only while no mark
covers it, and aggregate the marked hours from `reading`, so answers are exact at any
moment, also right after late or re-decoded readings. The days of the marks are marked
for the bulk files too (`bulk_stale`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from datahub.storage import bulk_files
from datahub.storage.buckets import (
    BUCKET_ORIGIN,
    AggregateFn,
    BucketScope,
    CityScope,
    DeviceScope,
    ceil_to,
    floor_to,
    partial_of_partials,
    partial_of_reading,
    partial_of_readings,
    series_of,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# One refresher at a time; an arbitrary key of the advisory lock namespace ("rollup").
REFRESH_LOCK = 0x726F6C6C7570


# Marks ------------------------------------------------------------------------------------


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
        {"ids": [d for d, _ in keys], "times": [t for _, t in keys], "origin": BUCKET_ORIGIN},
    )
    return cur.rowcount


def count_dirty(conn: psycopg.Connection) -> int:
    """Return how many marks wait for the refresher."""
    row = conn.execute("SELECT count(*) FROM rollup_dirty").fetchone()
    return int(row[0]) if row else 0


# Refresh ----------------------------------------------------------------------------------


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
        _recompute_cities(conn, [])  # the groups devices left or joined, if any
        return 0
    hours = sorted(set(marks))
    days = sorted({(device_id, floor_to(hour, DAY)) for device_id, hour in hours})
    # The same marks tell the bulk files which days changed (storage/bulk_files.py).
    bulk_files.mark_stale(conn, keys=days)
    filled = _recompute(conn, "reading_hourly", hours, HOUR, _HOURS_FROM_READINGS)
    _recompute(conn, "reading_daily", days, DAY, _DAYS_FROM_HOURS)
    _recompute_cities(conn, days)
    # The pairs whose newest reading may have changed: those with readings in a marked
    # hour, and those the marked devices had (a re-decode may have removed a metric).
    _refresh_latest(
        conn,
        sql.SQL(
            "SELECT * FROM unnest(%(ids)s::int[], %(metrics)s::text[]) AS p (device_id, metric)"
            " UNION SELECT l.device_id, l.metric FROM reading_latest l"
            " WHERE l.device_id = ANY(%(devices)s::int[])"
        ),
        {
            "ids": [d for d, _ in filled],
            "metrics": [m for _, m in filled],
            "devices": sorted({d for d, _ in hours}),
        },
    )
    return len(marks)


# The buckets to recompute, as the keyset `k` (device_id, bucket).
_KEYSET = sql.SQL(
    "WITH k AS (SELECT * FROM unnest(%(ids)s::int[], %(buckets)s::timestamptz[])"
    " AS k (device_id, bucket))"
)

# The hourly rows of the keyset's hours, from the readings.
_HOURS_FROM_READINGS = sql.SQL(
    """
    SELECT r.device_id, r.metric, k.bucket, {partial}
    FROM k JOIN reading r
      ON r.device_id = k.device_id AND r.time >= k.bucket AND r.time < k.bucket + %(w)s
    -- constant bounds too: TimescaleDB then plans only the chunks that hold them
    WHERE r.time >= %(lo)s AND r.time < %(hi)s
    GROUP BY 1, 2, 3
    """
).format(partial=partial_of_readings("r"))

# The daily rows of the keyset's days, from their hourly rows.
_DAYS_FROM_HOURS = sql.SQL(
    """
    SELECT h.device_id, h.metric, k.bucket, {partial}
    FROM k JOIN reading_hourly h
      ON h.device_id = k.device_id AND h.bucket >= k.bucket AND h.bucket < k.bucket + %(w)s
    GROUP BY 1, 2, 3
    """
).format(partial=partial_of_partials("h"))


def _recompute(
    conn: psycopg.Connection,
    table: str,
    keys: list[tuple[int, datetime]],
    width: timedelta,
    source: sql.Composable,
) -> set[tuple[int, str]]:
    """Replace the rows of `table` at `keys` by what `source` selects of the keyset `k`.

    Return the (device, metric) pairs written. A bucket left without readings (all
    re-decoded away) loses its row.
    """
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
        ).format(keyset=_KEYSET, table=sql.Identifier(table)),
        params,
    )
    # The distinct pairs only: this runs in the ingest process, beside its pipeline.
    rows = conn.execute(
        sql.SQL(
            "{keyset}, written AS (INSERT INTO {table} {source} RETURNING device_id, metric)"
            " SELECT DISTINCT device_id, metric FROM written"
        ).format(keyset=_KEYSET, table=sql.Identifier(table), source=source),
        params,
    ).fetchall()
    return {(device_id, metric) for device_id, metric in rows}


# The (city, dataset, day) groups to recompute, as the keyset `k`.
_CITY_KEYSET = sql.SQL(
    "WITH k AS (SELECT * FROM unnest(%(cities)s::text[], %(datasets)s::int[],"
    " %(days)s::timestamptz[]) AS k (city, dataset_id, day))"
)


def _recompute_cities(conn: psycopg.Connection, days: list[tuple[int, datetime]]) -> None:
    """Recompute `reading_city_daily` of the groups of the devices' `days` and of the marks.

    Call it after the days are recomputed. A device's group is its city and dataset now;
    the groups it left are marked in `rollup_city_dirty` (the trigger of migration 0005).
    """
    marks = conn.execute("DELETE FROM rollup_city_dirty RETURNING city, dataset_id, day").fetchall()
    groups = conn.execute(
        """
        SELECT DISTINCT d.city, d.dataset_id, k.day
        FROM unnest(%(ids)s::int[], %(days)s::timestamptz[]) AS k (device_id, day)
        JOIN device d ON d.id = k.device_id
        """,
        {"ids": [d for d, _ in days], "days": [day for _, day in days]},
    ).fetchall()
    keys = sorted({*marks, *groups})
    if not keys:
        return
    params = {
        "cities": [c for c, _, _ in keys],
        "datasets": [ds for _, ds, _ in keys],
        "days": [day for _, _, day in keys],
        "lo": min(day for _, _, day in keys),
        "hi": max(day for _, _, day in keys),
    }
    conn.execute(
        sql.SQL(
            """
            {keyset}
            DELETE FROM reading_city_daily c USING k
            WHERE c.city = k.city AND c.dataset_id = k.dataset_id AND c.bucket = k.day
            """
        ).format(keyset=_CITY_KEYSET),
        params,
    )
    conn.execute(
        sql.SQL(
            """
            {keyset}
            INSERT INTO reading_city_daily
            SELECT k.city, k.dataset_id, y.metric, k.day, {partial}
            FROM k
            JOIN reading_daily y ON y.bucket = k.day
            JOIN device d
              ON d.id = y.device_id AND d.city = k.city AND d.dataset_id = k.dataset_id
            WHERE y.bucket >= %(lo)s AND y.bucket <= %(hi)s
            GROUP BY 1, 2, 3, 4
            """
        ).format(keyset=_CITY_KEYSET, partial=partial_of_partials("y")),
        params,
    )


def _refresh_latest(
    conn: psycopg.Connection, pairs: sql.Composable, params: Mapping[str, Any]
) -> None:
    """Set `reading_latest` of the (device_id, metric) rows `pairs` selects from the hours.

    Call it after the hours are recomputed: the newest hourly row of a pair holds its
    newest reading (one backward probe of the hourly key); a pair left without any
    loses its row.
    """
    conn.execute(
        sql.SQL(
            """
            WITH p AS ({pairs}), fresh AS (
                SELECT p.device_id, p.metric, h.last_time, h.last_value
                FROM p LEFT JOIN LATERAL (
                    SELECT h.last_time, h.last_value FROM reading_hourly h
                    WHERE h.device_id = p.device_id AND h.metric = p.metric
                    ORDER BY h.bucket DESC
                    LIMIT 1
                ) AS h ON true
            ), gone AS (
                DELETE FROM reading_latest l USING fresh f
                WHERE l.device_id = f.device_id AND l.metric = f.metric AND f.last_time IS NULL
            )
            INSERT INTO reading_latest (device_id, metric, time, value)
            SELECT device_id, metric, last_time, last_value FROM fresh
            WHERE last_time IS NOT NULL
            ON CONFLICT (device_id, metric)
                DO UPDATE SET time = excluded.time, value = excluded.value
            """
        ).format(pairs=pairs),
        params,
    )


# Rebuild ----------------------------------------------------------------------------------


def rebuild(conn: psycopg.Connection, *, start: datetime, end: datetime) -> None:
    """Recompute every rollup of the whole days overlapping [start, end) from `reading`.

    For bulk loads that bypass `mark_dirty`; clears the marks of those days. The newest
    reading of each pair with readings in those days is set from the hours too, and the
    days of every city and dataset from the devices' days.
    """
    start, end = floor_to(start, DAY), ceil_to(end, DAY)
    params = {"start": start, "end": end, "origin": BUCKET_ORIGIN}
    for table in ("reading_daily", "reading_hourly"):
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE bucket >= %(start)s AND bucket < %(end)s").format(
                sql.Identifier(table)
            ),
            params,
        )
    conn.execute(
        sql.SQL(
            """
            INSERT INTO reading_hourly
            SELECT r.device_id, r.metric, date_bin('1 hour', r.time, %(origin)s), {partial}
            FROM reading r
            WHERE r.time >= %(start)s AND r.time < %(end)s
            GROUP BY 1, 2, 3
            """
        ).format(partial=partial_of_readings("r")),
        params,
    )
    conn.execute(
        sql.SQL(
            """
            INSERT INTO reading_daily
            SELECT h.device_id, h.metric, date_bin('1 day', h.bucket, %(origin)s), {partial}
            FROM reading_hourly h
            WHERE h.bucket >= %(start)s AND h.bucket < %(end)s
            GROUP BY 1, 2, 3
            """
        ).format(partial=partial_of_partials("h")),
        params,
    )
    _refresh_latest(
        conn,
        sql.SQL(
            "SELECT device_id, metric FROM reading_daily"
            " WHERE bucket >= %(start)s AND bucket < %(end)s"
            " UNION SELECT device_id, metric FROM reading_latest"
            " WHERE time >= %(start)s AND time < %(end)s"
        ),
        params,
    )
    conn.execute(
        "DELETE FROM reading_city_daily WHERE bucket >= %(start)s AND bucket < %(end)s", params
    )
    conn.execute("DELETE FROM rollup_city_dirty WHERE day >= %(start)s AND day < %(end)s", params)
    conn.execute(
        sql.SQL(
            """
            INSERT INTO reading_city_daily
            SELECT d.city, d.dataset_id, y.metric, y.bucket, {partial}
            FROM reading_daily y JOIN device d ON d.id = y.device_id
            WHERE y.bucket >= %(start)s AND y.bucket < %(end)s
            GROUP BY 1, 2, 3, 4
            """
        ).format(partial=partial_of_partials("y")),
        params,
    )
    conn.execute("DELETE FROM rollup_dirty WHERE hour >= %(start)s AND hour < %(end)s", params)
    bulk_files.mark_stale_range(conn, start=start, end=end)


# Queries ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Span:
    """How a query's [start, end) splits: whole days inside whole hours inside the range.

    Days are empty (day_start = day_end) unless the buckets are whole days.
    """

    start: datetime
    end: datetime
    hour_start: datetime
    hour_end: datetime
    day_start: datetime
    day_end: datetime

    @property
    def whole_hours(self) -> bool:
        return (self.hour_start, self.hour_end) == (self.start, self.end)

    @property
    def has_days(self) -> bool:
        return self.day_start < self.day_end

    def params(self) -> dict[str, datetime]:
        return {
            "start": self.start,
            "end": self.end,
            "hour_start": self.hour_start,
            "hour_end": self.hour_end,
            "day_start": self.day_start,
            "day_end": self.day_end,
        }


def _span(start: datetime, end: datetime, width: timedelta) -> _Span | None:
    """Split [start, end) for buckets of `width`; None when it holds no whole hour."""
    hour_start, hour_end = ceil_to(start, HOUR), floor_to(end, HOUR)
    if hour_start >= hour_end:
        return None
    day_start = day_end = hour_start
    if width % DAY == timedelta(0):
        day_start, day_end = ceil_to(hour_start, DAY), floor_to(hour_end, DAY)
        if day_start >= day_end:
            day_start = day_end = hour_start
    return _Span(start, end, hour_start, hour_end, day_start, day_end)


def select_buckets(
    conn: psycopg.Connection,
    *,
    scope: BucketScope,
    metric: str,
    fn: AggregateFn,
    start: datetime,
    end: datetime,
    width: timedelta,
) -> list[tuple[Any, ...]] | None:
    """Aggregate from the rollups, or return None when they cannot serve the query.

    They serve the functions with partials (not delta) in buckets of whole hours. Rows are
    (series, city, bucket, value, count, dataset ids), as `readings.select_buckets` returns.
    Whole days inside [start, end) come from `reading_daily` (when the width is whole days),
    the other whole hours from `reading_hourly`, and from `reading` the partial hours at
    either end plus every hour marked dirty (and the days holding one come from the hours).
    """
    if not fn.has_partials or width < HOUR or width % HOUR:
        return None
    span = _span(start, end, width)
    if span is None:
        return None
    if isinstance(scope, DeviceScope) and width == HOUR and span.whole_hours:
        query = _device_hours_query(fn)
    else:
        # A city-wide series of whole days reads the city's own daily rows.
        city_days = isinstance(scope, CityScope) and not scope.per_device and span.has_days
        query = _rollup_query(scope.WHERE, scope.per_device, fn, city_days)
    params = {
        **scope.params(),
        **span.params(),
        "metric": metric,
        "width": width,
        "origin": BUCKET_ORIGIN,
    }
    # Thousands of rows with an array each: binary results load several times faster.
    return conn.execute(query, params, binary=True).fetchall()


# The statements are composed once per shape (scope, function, days of a city) and kept as
# text: composing one anew took as long as a sixth of a device's 90-day hourly query.


def _scoped_and_dirty(where: str) -> sql.Composed:
    """The start of both queries: the devices in scope, and their marked whole hours."""
    return sql.SQL(
        """
WITH scoped AS (
    SELECT d.id, d.dev_eui, d.city, d.dataset_id FROM device d WHERE {where}
), dirty AS (
    SELECT DISTINCT x.device_id, x.hour
    FROM rollup_dirty x JOIN scoped s ON s.id = x.device_id
    WHERE x.hour >= %(hour_start)s AND x.hour < %(hour_end)s
)"""
    ).format(where=sql.SQL(where))


@functools.cache
def _device_hours_query(fn: AggregateFn) -> sql.SQL:
    """One device in buckets of one hour over whole hours, the commonest chart.

    Each hourly row is a bucket, so nothing is merged (a third of the general query's
    time); the marked hours come from the readings.
    """
    query = sql.SQL(
        """{scoped_and_dirty}
SELECT d.dev_eui, d.city, h.bucket, {value}, h.count::bigint, ARRAY[d.dataset_id]
FROM scoped d JOIN reading_hourly h ON h.device_id = d.id
WHERE h.metric = %(metric)s AND h.bucket >= %(hour_start)s AND h.bucket < %(hour_end)s
  AND NOT EXISTS (SELECT 1 FROM dirty x WHERE x.device_id = h.device_id AND x.hour = h.bucket)
UNION ALL
SELECT d.dev_eui, d.city, x.hour, {raw}, count(*), ARRAY[d.dataset_id]
FROM dirty x JOIN scoped d ON d.id = x.device_id
JOIN reading r
  ON r.device_id = x.device_id AND r.metric = %(metric)s
 AND r.time >= x.hour AND r.time < x.hour + INTERVAL '1 hour'
WHERE r.time >= %(hour_start)s AND r.time < %(hour_end)s
GROUP BY d.dev_eui, d.city, x.hour, d.dataset_id
ORDER BY 1, 2, 3
"""
    ).format(
        scoped_and_dirty=_scoped_and_dirty(DeviceScope.WHERE),
        value=fn.partial("h"),
        raw=fn.raw("r"),
    )
    return sql.SQL(query.as_string())


@functools.cache
def _rollup_query(where: str, per_device: bool, fn: AggregateFn, city_days: bool) -> sql.SQL:
    """Partials of every part of [start, end), merged per bucket: the general query.

    A raw reading is a partial of one. Each branch of `parts` reads one plain range of a
    key (device, metric, bucket or time), so that a city's query is one short index range
    scan per device and rollup, never a filter over every hour. The rollup branches merge
    their rows per series, dataset and bucket at once, so a city's 90 days leave the daily
    branch as 90 rows per dataset, not as 90,000.
    """
    # Only fn=last needs the ordered aggregate of last values, which sorts its input.
    last = fn is AggregateFn.LAST
    query = sql.SQL(
        """{scoped_and_dirty}, dirty_day AS (
    SELECT DISTINCT device_id, date_bin('1 day', hour, %(origin)s) AS day
    FROM dirty
    WHERE hour >= %(day_start)s AND hour < %(day_end)s
){stale}, parts AS (
    {days}
    UNION ALL
    -- whole hours before the first whole day, after the last, and of the marked days;
    -- marked hours themselves come from the readings below
    SELECT {series}, d.city, d.dataset_id, date_bin(%(width)s, h.bucket, %(origin)s),
           {hour_partial}
    FROM (
        SELECT s.id AS device_id, %(hour_start)s::timestamptz AS lo,
               %(day_start)s::timestamptz AS hi
        FROM scoped s
        UNION ALL
        SELECT s.id, %(day_end)s, %(hour_end)s FROM scoped s
        UNION ALL
        SELECT z.device_id, z.day, z.day + INTERVAL '1 day' FROM dirty_day z
    ) AS w
    JOIN scoped d ON d.id = w.device_id
    JOIN reading_hourly h
      ON h.device_id = w.device_id AND h.metric = %(metric)s
     AND h.bucket >= w.lo AND h.bucket < w.hi
    WHERE w.lo < w.hi
      AND NOT EXISTS (
          SELECT 1 FROM dirty x WHERE x.device_id = h.device_id AND x.hour = h.bucket)
    GROUP BY 1, 2, 3, 4
    UNION ALL
    -- the partial hours at either end, from the readings
    SELECT {series}, d.city, d.dataset_id, r.time, {reading}
    FROM scoped d JOIN reading r ON r.device_id = d.id
    WHERE r.metric = %(metric)s AND r.time >= %(start)s AND r.time < %(hour_start)s
    UNION ALL
    SELECT {series}, d.city, d.dataset_id, r.time, {reading}
    FROM scoped d JOIN reading r ON r.device_id = d.id
    WHERE r.metric = %(metric)s AND r.time >= %(hour_end)s AND r.time < %(end)s
    UNION ALL
    -- the marked hours, from the readings
    SELECT {series}, d.city, d.dataset_id, r.time, {reading}
    FROM dirty x JOIN scoped d ON d.id = x.device_id JOIN reading r
      ON r.device_id = x.device_id AND r.metric = %(metric)s
     AND r.time >= x.hour AND r.time < x.hour + INTERVAL '1 hour'
    WHERE r.time >= %(hour_start)s AND r.time < %(hour_end)s
), per_dataset AS (
    -- Merged per bucket and dataset first: a hash aggregate, where one step with
    -- array_agg(DISTINCT dataset) would sort every partial.
    SELECT p.series, p.city, date_bin(%(width)s, p.time, %(origin)s) AS bucket,
           p.dataset_id, {merged}
    FROM parts p
    GROUP BY 1, 2, 3, 4
)
{final}"""
    ).format(
        scoped_and_dirty=_scoped_and_dirty(where),
        stale=_CITY_STALE if city_days else sql.SQL(""),
        days=_city_days(last) if city_days else _device_days(per_device, last),
        series=series_of(per_device),
        hour_partial=partial_of_partials("h", last=last),
        reading=partial_of_reading("r"),
        merged=partial_of_partials("p", last=last),
        final=_final(per_device, fn),
    )
    return sql.SQL(query.as_string())


def _device_days(per_device: bool, last: bool) -> sql.Composed:
    """Whole days from the devices' daily rows, unless an hour of the day is marked."""
    return sql.SQL(
        """SELECT {series} AS series, d.city, d.dataset_id,
           date_bin(%(width)s, y.bucket, %(origin)s) AS time, {partial}
    FROM scoped d JOIN reading_daily y ON y.device_id = d.id
    WHERE y.metric = %(metric)s AND y.bucket >= %(day_start)s AND y.bucket < %(day_end)s
      AND NOT EXISTS (
          SELECT 1 FROM dirty_day z WHERE z.device_id = y.device_id AND z.day = y.bucket)
    GROUP BY 1, 2, 3, 4"""
    ).format(series=series_of(per_device), partial=partial_of_partials("y", last=last))


# A city-wide series: a (dataset, day) is stale while a device of the city and dataset
# has a marked hour that day, or the group is marked (a device joined or left it).
_CITY_STALE = sql.SQL(
    """, stale AS (
    SELECT x.dataset_id, x.day FROM rollup_city_dirty x
    WHERE x.city = %(city)s AND x.day >= %(day_start)s AND x.day < %(day_end)s
    UNION
    SELECT s.dataset_id, z.day FROM dirty_day z JOIN scoped s ON s.id = z.device_id
)"""
)


def _city_days(last: bool) -> sql.Composed:
    """Whole days of a city-wide series: the city's rows of each visible dataset unless
    stale; a stale (dataset, day) from its devices' daily rows, unless an hour of the day
    is marked."""
    return sql.SQL(
        """SELECT NULL::text AS series, c.city, c.dataset_id,
           date_bin(%(width)s, c.bucket, %(origin)s) AS time, {city_partial}
    FROM reading_city_daily c
    WHERE c.city = %(city)s AND c.metric = %(metric)s
      AND c.bucket >= %(day_start)s AND c.bucket < %(day_end)s
      AND (%(dataset_ids)s::int[] IS NULL OR c.dataset_id = ANY(%(dataset_ids)s::int[]))
      AND NOT EXISTS (
          SELECT 1 FROM stale t WHERE t.dataset_id = c.dataset_id AND t.day = c.bucket)
    GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT NULL::text, d.city, d.dataset_id, date_bin(%(width)s, y.bucket, %(origin)s),
           {device_partial}
    FROM stale t JOIN scoped d ON d.dataset_id = t.dataset_id
    JOIN reading_daily y
      ON y.device_id = d.id AND y.metric = %(metric)s AND y.bucket = t.day
    WHERE NOT EXISTS (
        SELECT 1 FROM dirty_day z WHERE z.device_id = y.device_id AND z.day = y.bucket)
    GROUP BY 1, 2, 3, 4"""
    ).format(
        city_partial=partial_of_partials("c", last=last),
        device_partial=partial_of_partials("y", last=last),
    )


def _final(per_device: bool, fn: AggregateFn) -> sql.Composed:
    """Each bucket's value from its partials per dataset, and the datasets it holds."""
    if per_device:  # a device's buckets hold one dataset: nothing left to merge
        return sql.SQL(
            """SELECT p.series, p.city, p.bucket, {value}, p.count::bigint, ARRAY[p.dataset_id]
FROM per_dataset p
ORDER BY 1, 2, 3
"""
        ).format(value=fn.partial("p"))
    return sql.SQL(
        """SELECT p.series, p.city, p.bucket, {value}, sum(p.count)::bigint,
       array_agg(p.dataset_id ORDER BY p.dataset_id)
FROM per_dataset p
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""
    ).format(value=fn.merge("p"))
