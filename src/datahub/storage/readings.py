"""The reading table: normalized observations, one row per device, metric and time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from datahub.storage import devices, privacy, rollups
from datahub.storage.access import LICENCE_COLUMNS, LicenceRow
from datahub.storage.buckets import BUCKET_ORIGIN, AggregateFn, BucketScope, series_of
from datahub.storage.db import Statement
from datahub.storage.devices import VISIBLE_DEVICE
from datahub.storage.retention import RAW_CUTOFF, RawLimit


# Not frozen: the ingest builds millions, and a frozen __init__ costs 5x as much.
@dataclass(slots=True)
class ReadingRow:
    time: datetime
    device_id: int
    metric: str
    value: float
    decoder_id: int | None = None  # the `decoder` that produced it; None: not recorded


def insert_readings(conn: psycopg.Connection, *, rows: Sequence[ReadingRow]) -> int:
    """Store readings, skipping any already stored; return how many were new.

    New readings are the rule, so they go in by binary COPY, in a savepoint; COPY took two
    thirds of the time of an INSERT … ON CONFLICT of the same rows. A reading stored before
    (or twice in `rows`) stops the COPY at the primary key; the savepoint is then rolled back
    and the rows inserted again, skipping the ones already there.
    """
    if not rows:
        return 0
    try:
        with conn.transaction():
            stored = copy_readings(
                conn, rows=((r.time, r.device_id, r.metric, r.value, r.decoder_id) for r in rows)
            )
    except psycopg.errors.UniqueViolation:
        stored = _insert_readings_skipping(conn, rows)
    rollups.mark_dirty(conn, keys=[(r.device_id, r.time) for r in rows])
    return stored


def copy_readings(
    conn: psycopg.Connection, *, rows: Iterable[tuple[datetime, int, str, float, int | None]]
) -> int:
    """Binary COPY of (time, device id, metric, value, decoder id) rows; return the count.

    No dedup and no rollup marks: `insert_readings` adds both; a bulk load (the benchmark's
    data set) calls `rollups.rebuild` for the days it wrote.
    """
    n = 0
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY reading (time, device_id, metric, value, decoder_id) FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["timestamptz", "int4", "text", "float8", "int2"])
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def _insert_readings_skipping(conn: psycopg.Connection, rows: Sequence[ReadingRow]) -> int:
    cur = conn.execute(
        """
        INSERT INTO reading (time, device_id, metric, value, decoder_id)
        SELECT * FROM unnest(%s::timestamptz[], %s::int[], %s::text[], %s::float8[],
                             %s::smallint[])
        ON CONFLICT DO NOTHING
        """,
        (
            [r.time for r in rows],
            [r.device_id for r in rows],
            [r.metric for r in rows],
            [r.value for r in rows],
            [r.decoder_id for r in rows],
        ),
    )
    return cur.rowcount


def select_uplink_readings(
    conn: psycopg.Connection, *, keys: Sequence[tuple[int, datetime]]
) -> list[ReadingRow]:
    """Select the readings of uplinks, given as (device id, received_at) pairs.

    The readings of an uplink are those of its device at its time.
    """
    if not keys:
        return []
    rows = conn.execute(
        """
        SELECT r.time, r.device_id, r.metric, r.value, r.decoder_id
        FROM unnest(%s::int[], %s::timestamptz[]) AS k (device_id, time)
        JOIN reading r ON r.device_id = k.device_id AND r.time = k.time
        """,
        ([d for d, _ in keys], [t for _, t in keys]),
    ).fetchall()
    return [ReadingRow(*row) for row in rows]


def replace_readings(
    conn: psycopg.Connection, *, keys: Sequence[tuple[int, datetime]], rows: Sequence[ReadingRow]
) -> tuple[int, int]:
    """Delete the readings of uplinks, as (device id, received_at) pairs, then insert `rows`.

    Run it in the caller's transaction, so readers see the old readings or the new, never
    neither. Return (deleted, inserted).
    """
    deleted = 0
    if keys:
        cur = conn.execute(
            """
            DELETE FROM reading r
            USING unnest(%s::int[], %s::timestamptz[]) AS k (device_id, time)
            WHERE r.device_id = k.device_id AND r.time = k.time
            """,
            ([d for d, _ in keys], [t for _, t in keys]),
        )
        deleted = cur.rowcount
        rollups.mark_dirty(conn, keys=keys)
    return deleted, insert_readings(conn, rows=rows)


# fn=delta of a counter: each reading's increase over the reading before it (the last
# one before the range, for the range's first), summed per bucket. A drop is a wrap-around
# when the counter's width is known, the previous value lay in the top quarter of its
# range and the new one lies in the bottom quarter; any other drop is a reset (the device
# restarted counting from zero), whose increase is the new value. `modulus` is 2**bits
# times the mapping's scale, in stored units; NULL when the width is not known.
_INCREASE = """
    CASE
        WHEN s.prev IS NULL THEN NULL
        WHEN s.value >= s.prev THEN s.value - s.prev
        WHEN s.modulus IS NOT NULL AND s.prev >= 0.75 * s.modulus AND s.value < 0.25 * s.modulus
            THEN s.value + s.modulus - s.prev
        ELSE s.value
    END
"""


@dataclass(frozen=True, slots=True)
class SeriesReading:
    time: datetime
    metric: str
    value: float
    decoder: str | None = None  # the decoder that produced it; None for older readings


# Not frozen, unlike the other rows: queries return thousands of these and of LatestRow,
# and a frozen dataclass's __init__ (object.__setattr__ per field) takes three times as long.
@dataclass(slots=True)
class BucketRow:
    """One time bucket of one series; `dev_eui` is None for a city-wide series."""

    dev_eui: str | None
    city: str
    time: datetime
    value: float
    count: int
    datasets: tuple[int, ...] = ()  # the datasets whose readings the bucket holds


@dataclass(slots=True)
class LatestRow:
    dev_eui: str
    name: str
    city: str
    metric: str
    time: datetime
    value: float
    dataset_id: int
    profile: str
    privacy: str = "public_infrastructure"  # datahub.privacy.PrivacyClass
    protected: bool = False  # shown protected to the caller (storage/privacy.py)
    shown_id: str = ""  # the DevEUI, or the public id of a protected device


@dataclass(frozen=True, slots=True)
class SeriesDevice:
    """A device whose readings are asked for, with what the answer needs of its dataset."""

    device: devices.DeviceRow
    raw_limit: RawLimit | None  # None: its dataset keeps raw readings for ever
    licence: LicenceRow


def series_statement(
    *,
    now: datetime,
    dev_eui: str | None = None,
    public_id: str | None = None,
    dataset_ids: Sequence[int] | None = None,
    granted: frozenset[int] | None = None,
) -> Statement[SeriesDevice | None]:
    """`devices.device_statement` that also returns its dataset's cutoff of raw readings
    at `now` and its licence: what a device's series needs besides its readings, in one
    round trip."""
    where, params = devices.one_device(dev_eui, public_id, dataset_ids, granted)
    device_columns = len(fields(devices.DeviceRow))

    def result(rows: list[Any]) -> SeriesDevice | None:
        if not rows:
            return None
        row = rows[0]
        device = devices.DeviceRow(*row[:device_columns])
        before, days = row[device_columns : device_columns + 2]
        return SeriesDevice(
            device=device,
            raw_limit=None if days is None else RawLimit(before, device.dataset_slug, days),
            licence=LicenceRow(*row[device_columns + 2 :]),
        )

    return Statement(
        f"""
        SELECT {devices.DEVICE_COLUMNS}, {RAW_CUTOFF}, {LICENCE_COLUMNS}
        FROM {devices.DEVICE_TABLES}
        WHERE {where}
        """,
        {**params, "now": now},
        result,
    )


def readings_statement(
    *,
    device_id: int,
    metric: str | None,
    start: datetime,
    end: datetime,
    after: tuple[datetime, str] | None = None,
    limit: int,
) -> Statement[list[SeriesReading]]:
    """The statement that selects one device's readings in [start, end) by (time, metric),
    after a keyset position.

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
        SELECT r.time, r.metric, r.value, dec.name
        FROM reading r LEFT JOIN decoder dec ON dec.id = r.decoder_id
        WHERE {where}
        ORDER BY r.time, r.metric
        LIMIT %(limit)s
        """
    ).format(where=sql.SQL(" AND ").join(where))
    params["limit"] = limit
    return Statement(query, params, lambda rows: [SeriesReading(*row) for row in rows])


def select_buckets(
    conn: psycopg.Connection,
    *,
    scope: BucketScope,
    metric: str,
    start: datetime,
    end: datetime,
    width: timedelta,
    fn: AggregateFn,
    counters: Mapping[str, float | None] | None = None,
) -> list[BucketRow]:
    """Aggregate one metric of a scope's devices in [start, end) into buckets of `width`.

    Only buckets holding readings are returned, ordered by series, then time.
    `fn=delta` needs `counters`, profile -> counter modulus (or None), and only
    devices of those profiles count. Each bucket names the datasets it holds readings of.
    """
    # The rollups answer whole hours and days; fn=delta and finer buckets need the readings.
    rows = rollups.select_buckets(
        conn, scope=scope, metric=metric, fn=fn, start=start, end=end, width=width
    )
    if rows is None:
        params = {
            **scope.params(),
            "metric": metric,
            "start": start,
            "end": end,
            "width": width,
            "origin": BUCKET_ORIGIN,
        }
        if fn is AggregateFn.DELTA:
            if counters is None:
                raise ValueError("fn=delta needs the counter profiles")
            query = _delta_query(scope.WHERE, scope.per_device)
            params |= {"profiles": list(counters), "moduli": list(counters.values())}
        else:
            query = _bucket_query(scope.WHERE, scope.per_device, fn)
        rows = conn.execute(query, params, binary=True).fetchall()
    return [
        BucketRow(dev_eui, city, time, value, count, datasets=tuple(datasets))
        for dev_eui, city, time, value, count, datasets in rows
    ]


def _delta_query(where: str, per_device: bool) -> sql.Composed:
    # The newest reading before the range is taken per device with one index probe
    # (LATERAL ... LIMIT 1), so the range's first increase is known too.
    return sql.SQL(
        """
        WITH scoped AS (
            SELECT d.id, d.dev_eui, d.city, d.dataset_id, c.modulus
            FROM device d
            JOIN unnest(%(profiles)s::text[], %(moduli)s::float8[]) AS c (profile, modulus)
              ON c.profile = d.profile
            WHERE {scope}
        ), points AS (
            SELECT s.id, s.dev_eui, s.city, s.modulus, r.time, r.value
            FROM scoped s
            JOIN reading r ON r.device_id = s.id
            WHERE r.metric = %(metric)s AND r.time >= %(start)s AND r.time < %(end)s
            UNION ALL
            SELECT s.id, s.dev_eui, s.city, s.modulus, p.time, p.value
            FROM scoped s
            CROSS JOIN LATERAL (
                SELECT r.time, r.value FROM reading r
                WHERE r.device_id = s.id AND r.metric = %(metric)s AND r.time < %(start)s
                ORDER BY r.time DESC
                LIMIT 1
            ) AS p
        ), steps AS (
            SELECT p.*, lag(p.value) OVER (PARTITION BY p.id ORDER BY p.time) AS prev
            FROM points p
        )
        SELECT {series}, d.city, date_bin(%(width)s, s.time, %(origin)s) AS bucket,
               coalesce(sum({increase}), 0)::float8, count(*),
               array_agg(DISTINCT d.dataset_id)
        FROM steps s JOIN scoped d ON d.id = s.id
        WHERE s.time >= %(start)s
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        """
    ).format(series=series_of(per_device), scope=sql.SQL(where), increase=sql.SQL(_INCREASE))


def _bucket_query(where: str, per_device: bool, fn: AggregateFn) -> sql.Composed:
    return sql.SQL(
        """
        SELECT {series}, d.city, date_bin(%(width)s, r.time, %(origin)s) AS bucket,
               {value}, count(*), array_agg(DISTINCT d.dataset_id)
        FROM reading r JOIN device d ON d.id = r.device_id
        WHERE r.metric = %(metric)s AND r.time >= %(start)s AND r.time < %(end)s AND {scope}
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3
        """
    ).format(series=series_of(per_device), value=fn.raw("r"), scope=sql.SQL(where))


def select_latest(
    conn: psycopg.Connection,
    *,
    metrics_of: Mapping[str, Sequence[str]],
    city: str | None = None,
    supplier: str | None = None,
    dataset: str | None = None,
    dataset_ids: Sequence[int] | None = None,
    granted: frozenset[int] | None = None,
) -> list[LatestRow]:
    """Select the newest reading of each device and metric that has any, by the id the
    device is shown by, then metric.

    The pairs are the devices' profiles' metrics, `metrics_of` (profile -> metrics; a
    device of another profile has none), of the devices filtered as `devices.list_devices`
    filters them (`supplier` and `dataset` are slugs; `dataset_ids` None: every dataset).
    Protected personal devices (`granted`, as for `devices.get_device`) are left out:
    their readings are published only as aggregates.
    A pair's value comes from `reading_latest` unless a mark of its device in
    `rollup_dirty` lies at or after that value's hour (newer readings, or that one
    re-decoded away): then from `reading`, one index probe walking the key (device_id,
    metric, time) backwards, so an answer is exact before the refresher has run.
    """
    profiles = [(p, m) for p, metrics in metrics_of.items() for m in metrics]
    if not profiles:
        return []
    rows = conn.execute(
        f"""
        WITH shown AS (
            SELECT d.id AS device_id, d.dev_eui, d.name, d.city, d.dataset_id, d.profile,
                   pm.metric, {privacy.privacy_of("d")} AS privacy,
                   {privacy.protected("d")} AS protected, {privacy.shown_id("d")} AS shown_id
            FROM device d
            JOIN unnest(%(profiles)s::text[], %(metrics)s::text[]) AS pm (profile, metric)
              ON pm.profile = d.profile
            WHERE (%(city)s::text IS NULL OR d.city = %(city)s)
              AND (%(supplier)s::text IS NULL
                   OR d.supplier_id = (SELECT id FROM supplier WHERE slug = %(supplier)s))
              AND (%(dataset)s::text IS NULL
                   OR d.dataset_id = (SELECT id FROM dataset WHERE slug = %(dataset)s))
              AND {VISIBLE_DEVICE}
        ), p AS (
            SELECT * FROM shown WHERE NOT (protected AND privacy = 'personal')
        ), dirty AS (
            -- the newest marked hour of each device (the refresher has not caught up)
            SELECT x.device_id, max(x.hour) AS hour FROM rollup_dirty x GROUP BY 1
        )
        SELECT p.dev_eui, p.name, p.city, p.metric, v.time, v.value, p.dataset_id, p.profile,
               p.privacy, p.protected, p.shown_id
        FROM p
        LEFT JOIN reading_latest l ON l.device_id = p.device_id AND l.metric = p.metric
        LEFT JOIN dirty x ON x.device_id = p.device_id
        CROSS JOIN LATERAL (
            SELECT l.time, l.value
            WHERE l.time IS NOT NULL
              AND (x.hour IS NULL OR x.hour < date_bin('1 hour', l.time, %(origin)s))
            UNION ALL
            (
                SELECT r.time, r.value FROM reading r
                WHERE x.hour IS NOT NULL
                  AND (l.time IS NULL OR x.hour >= date_bin('1 hour', l.time, %(origin)s))
                  AND r.device_id = p.device_id AND r.metric = p.metric
                ORDER BY r.time DESC
                LIMIT 1
            )
        ) AS v
        ORDER BY p.shown_id COLLATE "C", p.metric
        """,
        {
            "profiles": [p for p, _ in profiles],
            "metrics": [m for _, m in profiles],
            "city": city,
            "supplier": supplier,
            "dataset": dataset,
            "dataset_ids": list(dataset_ids) if dataset_ids is not None else None,
            "granted": privacy.granted_param(granted),
            "origin": BUCKET_ORIGIN,
        },
        binary=True,  # thousands of rows: binary results load several times faster
    ).fetchall()
    return [LatestRow(*row) for row in rows]
