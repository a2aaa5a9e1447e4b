"""Deleting raw uplinks and readings past their dataset's retention; the rollups stay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from datahub.storage.buckets import BUCKET_ORIGIN
from datahub.storage.db import Statement


@dataclass(frozen=True, slots=True)
class DatasetCutoffs:
    """A dataset's retention, as the times before which its raw data goes (None: never)."""

    dataset_id: int
    slug: str
    uplink_days: int | None
    reading_days: int | None
    uplinks_before: datetime | None
    readings_before: datetime | None


def select_cutoffs(conn: psycopg.Connection, *, now: datetime) -> list[DatasetCutoffs]:
    """Return every dataset's retention and cutoffs at `now`, by slug."""
    rows = conn.execute(
        """
        SELECT id, slug, uplink_retention_days, reading_retention_days,
               %(now)s - make_interval(days => uplink_retention_days),
               %(now)s - make_interval(days => reading_retention_days)
        FROM dataset ORDER BY slug
        """,
        {"now": now},
    ).fetchall()
    return [DatasetCutoffs(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class RawLimit:
    """The newest cutoff of raw readings among some datasets: before it, only rollups."""

    before: datetime
    dataset: str
    days: int


# The cutoff of the raw readings of the dataset `ds` at `%(now)s`, and its retention in days
# (both NULL if it keeps them for ever).
RAW_CUTOFF = "%(now)s - make_interval(days => ds.reading_retention_days), ds.reading_retention_days"


def raw_limit_statement(
    *,
    now: datetime,
    device_id: int | None = None,
    city: str | None = None,
    dataset_ids: list[int] | None = None,
) -> Statement[RawLimit | None]:
    """The statement that returns the latest reading cutoff of the datasets of one device,
    or of a city's devices among `dataset_ids` (None: all); None if they keep raw readings
    for ever."""
    return Statement(
        f"""
        SELECT {RAW_CUTOFF}, ds.slug
        FROM dataset ds
        WHERE ds.reading_retention_days IS NOT NULL
          AND (%(dataset_ids)s::int[] IS NULL OR ds.id = ANY(%(dataset_ids)s::int[]))
          AND EXISTS (
              SELECT 1 FROM device d
              WHERE d.dataset_id = ds.id
                AND (%(device_id)s::int IS NULL OR d.id = %(device_id)s)
                AND (%(city)s::text IS NULL OR d.city = %(city)s))
        ORDER BY ds.reading_retention_days, ds.slug
        LIMIT 1
        """,
        {"now": now, "device_id": device_id, "city": city, "dataset_ids": dataset_ids},
        lambda rows: RawLimit(rows[0][0], rows[0][2], rows[0][1]) if rows else None,
    )


def delete_old_readings(
    conn: psycopg.Connection, *, dataset_id: int, before: datetime, limit: int
) -> int:
    """Delete up to `limit` readings of a dataset's devices older than `before`; return how
    many. Readings of an hour marked for the rollup refresher stay until it has rolled
    them up (a later run deletes them): the rollups must hold every deleted reading."""
    cur = conn.execute(
        """
        DELETE FROM reading r
        USING (
            SELECT r.device_id, r.metric, r.time
            FROM reading r JOIN device d ON d.id = r.device_id
            WHERE d.dataset_id = %(dataset_id)s AND r.time < %(before)s
              AND NOT EXISTS (
                  SELECT 1 FROM rollup_dirty m
                  WHERE m.device_id = r.device_id
                    AND m.hour = date_bin('1 hour', r.time, %(origin)s))
            LIMIT %(limit)s
        ) AS old
        WHERE r.device_id = old.device_id AND r.metric = old.metric AND r.time = old.time
        """,
        {"dataset_id": dataset_id, "before": before, "limit": limit, "origin": BUCKET_ORIGIN},
    )
    return cur.rowcount


def delete_old_uplinks(
    conn: psycopg.Connection, *, dataset_id: int | None, before: datetime, limit: int
) -> int:
    """Delete up to `limit` raw uplinks older than `before` of a dataset's devices, or with
    `dataset_id` None of no registered device; return how many."""
    cur = conn.execute(
        """
        DELETE FROM uplink u
        USING (
            SELECT u.received_at, u.dedup_key
            FROM uplink u LEFT JOIN device d ON d.id = u.device_id
            WHERE u.received_at < %(before)s
              AND (CASE WHEN %(dataset_id)s::int IS NULL THEN d.id IS NULL
                        ELSE d.dataset_id = %(dataset_id)s END)
            LIMIT %(limit)s
        ) AS old
        WHERE u.received_at = old.received_at AND u.dedup_key = old.dedup_key
        """,
        {"dataset_id": dataset_id, "before": before, "limit": limit},
    )
    return cur.rowcount


def has_dirty_hours_before(conn: psycopg.Connection, *, before: datetime) -> bool:
    """Tell whether an hour before `before` waits for the rollup refresher."""
    row = conn.execute("SELECT 1 FROM rollup_dirty WHERE hour < %s LIMIT 1", (before,)).fetchone()
    return row is not None


def drop_chunks(conn: psycopg.Connection, *, table: str, before: datetime) -> int:
    """Drop a hypertable's chunks that end before `before` (TimescaleDB); return how many."""
    rows = conn.execute(
        "SELECT drop_chunks(%s::regclass, older_than => %s)", (table, before)
    ).fetchall()
    return len(rows)
