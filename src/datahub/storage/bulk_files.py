"""The bulk files: which file holds which dataset's day or month, and which days changed.

A file's row is replaced when a new version is written (late data); the file itself is
never changed, a new version has a new name. `bulk_stale` holds (dataset, day) pairs
whose readings changed: the rollup refresher adds them from its marks (`mark_stale`),
the bulk writer takes them (`take_stale`) before it reads the day's readings.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from datahub.storage import privacy

# Rows fetched per round trip when a day's readings are streamed into a file.
STREAM_ROWS = 5_000


@dataclass(frozen=True, slots=True)
class BulkFile:
    """One written file: its dataset, period, name under the bulk directory and content."""

    dataset_id: int
    dataset_slug: str
    period: str  # "2026-12-01" (a UTC day) or "2026-12" (a month)
    period_start: datetime
    period_end: datetime
    name: str
    rows: int
    bytes: int
    sha256: str
    version: int
    written_at: datetime

    @property
    def is_month(self) -> bool:
        return len(self.period) == len("2026-12")


_SELECT = """
    SELECT f.dataset_id, ds.slug, f.period, f.period_start, f.period_end, f.name, f.rows,
           f.bytes, f.sha256, f.version, f.written_at
    FROM bulk_file f JOIN dataset ds ON ds.id = f.dataset_id
"""


def get_file(conn: psycopg.Connection, *, dataset_slug: str, period: str) -> BulkFile | None:
    """Return the current file of a dataset's period, or None."""
    row = conn.execute(
        f"{_SELECT} WHERE ds.slug = %s AND f.period = %s", (dataset_slug, period)
    ).fetchone()
    return BulkFile(*row) if row is not None else None


def list_files(
    conn: psycopg.Connection,
    *,
    dataset_ids: Sequence[int],
    months: bool | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[BulkFile]:
    """List the files of the datasets by dataset slug, then period.

    `months` True: month files only, False: day files only, None: both. `start` and `end`
    keep the files whose period overlaps [start, end).
    """
    rows = conn.execute(
        f"""
        {_SELECT}
        WHERE f.dataset_id = ANY(%(ids)s)
          AND (%(months)s::boolean IS NULL OR (length(f.period) = 7) = %(months)s)
          AND (%(start)s::timestamptz IS NULL OR f.period_end > %(start)s)
          AND (%(end)s::timestamptz IS NULL OR f.period_start < %(end)s)
        ORDER BY ds.slug, f.period
        """,
        {"ids": list(dataset_ids), "months": months, "start": start, "end": end},
    ).fetchall()
    return [BulkFile(*row) for row in rows]


def upsert_file(
    conn: psycopg.Connection,
    *,
    dataset_id: int,
    period: str,
    start: datetime,
    end: datetime,
    name: str,
    rows: int,
    size: int,
    sha256: str,
) -> None:
    """Record a new version of a period's file.

    `written_at` is the moment of writing, not the transaction's start: a month is due
    again when one of its days was written after it.
    """
    conn.execute(
        """
        INSERT INTO bulk_file (dataset_id, period, period_start, period_end, name, rows, bytes,
                               sha256, version, written_at)
        VALUES (%(dataset_id)s, %(period)s, %(start)s, %(end)s, %(name)s, %(rows)s, %(bytes)s,
                %(sha256)s, 1, clock_timestamp())
        ON CONFLICT (dataset_id, period) DO UPDATE SET
            name = excluded.name, rows = excluded.rows, bytes = excluded.bytes,
            sha256 = excluded.sha256, version = bulk_file.version + 1,
            written_at = excluded.written_at
        """,
        {
            "dataset_id": dataset_id,
            "period": period,
            "start": start,
            "end": end,
            "name": name,
            "rows": rows,
            "bytes": size,
            "sha256": sha256,
        },
    )


def list_names(conn: psycopg.Connection) -> set[str]:
    """Return the names of every current file."""
    return {name for (name,) in conn.execute("SELECT name FROM bulk_file").fetchall()}


def mark_stale(conn: psycopg.Connection, *, keys: Sequence[tuple[int, datetime]]) -> None:
    """Mark the (dataset, day) of readings, given as (device id, day start), as changed."""
    if not keys:
        return
    conn.execute(
        """
        INSERT INTO bulk_stale (dataset_id, day)
        SELECT DISTINCT d.dataset_id, k.day
        FROM unnest(%s::int[], %s::timestamptz[]) AS k (device_id, day)
        JOIN device d ON d.id = k.device_id
        ON CONFLICT DO NOTHING
        """,
        ([d for d, _ in keys], [day for _, day in keys]),
    )


def mark_stale_range(conn: psycopg.Connection, *, start: datetime, end: datetime) -> None:
    """Mark every (dataset, day) with readings in the days [start, end) as changed."""
    conn.execute(
        """
        INSERT INTO bulk_stale (dataset_id, day)
        SELECT DISTINCT dataset_id, bucket FROM reading_city_daily
        WHERE bucket >= %s AND bucket < %s
        ON CONFLICT DO NOTHING
        """,
        (start, end),
    )


def take_stale(conn: psycopg.Connection, *, dataset_id: int, day: datetime) -> bool:
    """Remove a (dataset, day) mark; return whether there was one."""
    cur = conn.execute(
        "DELETE FROM bulk_stale WHERE dataset_id = %s AND day = %s", (dataset_id, day)
    )
    return cur.rowcount > 0


def select_days_to_write(
    conn: psycopg.Connection, *, dataset_id: int, before: datetime
) -> list[datetime]:
    """Return the days before `before` that need a file: marked changed, or with readings
    (by the cities' daily rollups) and no file yet."""
    rows = conn.execute(
        """
        SELECT day FROM bulk_stale WHERE dataset_id = %(id)s AND day < %(before)s
        UNION
        SELECT DISTINCT c.bucket FROM reading_city_daily c
        WHERE c.dataset_id = %(id)s AND c.bucket < %(before)s
          AND NOT EXISTS (
              SELECT 1 FROM bulk_file f
              WHERE f.dataset_id = %(id)s AND f.period_start = c.bucket AND length(f.period) = 10)
        ORDER BY 1
        """,
        {"id": dataset_id, "before": before},
    ).fetchall()
    return [day for (day,) in rows]


def delete_stale_except(conn: psycopg.Connection, *, dataset_ids: Sequence[int]) -> int:
    """Forget the marks of every dataset but these (datasets that get no files)."""
    cur = conn.execute(
        "DELETE FROM bulk_stale WHERE NOT (dataset_id = ANY(%s))", (list(dataset_ids),)
    )
    return cur.rowcount


def stream_readings(
    conn: psycopg.Connection, *, dataset_id: int, start: datetime, end: datetime
) -> Iterator[tuple[Any, ...]]:
    """Yield a dataset's readings in [start, end) by time, shown id, metric, as (time, shown
    id, name, city, latitude, longitude, placement, metric, value, privacy class,
    protected), fetched in batches.

    The files are for anyone: each device is shown as to a caller without a grant
    (storage/privacy.py), and personal devices' readings are left out. The dataset is its
    devices' now. Run it in a transaction (a server-side cursor).
    """
    with conn.cursor(name="bulk_readings") as cur:
        cur.itersize = STREAM_ROWS
        cur.execute(
            f"""
            SELECT r.time, d.shown_id, d.name, d.city, d.latitude, d.longitude, d.placement,
                   r.metric, r.value, d.class, d.protected
            FROM (
                SELECT x.id, x.name, x.city, x.latitude, x.longitude, x.placement,
                       {privacy.privacy_of("x")} AS class, {privacy.protected("x")} AS protected,
                       {privacy.shown_id("x")} AS shown_id
                FROM device x WHERE x.dataset_id = %(dataset)s
            ) AS d JOIN reading r ON r.device_id = d.id
            WHERE r.time >= %(start)s AND r.time < %(end)s
              AND NOT (d.class = 'personal' AND d.protected)
            ORDER BY r.time, d.shown_id COLLATE "C", r.metric
            """,
            {"dataset": dataset_id, "start": start, "end": end, "granted": []},
        )
        yield from cur
