"""Retention: raw uplinks and readings are kept as long as their dataset says, then deleted.

Each dataset sets `uplink_retention_days` and `reading_retention_days` (None: for ever;
changed by an administrator, in the audit log). A run deletes what is older, a bounded
batch per transaction. On TimescaleDB, the chunks that end before every dataset's cutoff
(only when every dataset has a retention) are dropped whole first, which costs no row
deletes; the rest goes row by row, on plain PostgreSQL everything. Raw uplinks of no
registered device go once they are older than every dataset's cutoff.

The rollups (`reading_hourly`, `reading_daily`, `reading_city_daily`, `reading_latest`)
are kept: a reading is deleted only once the rollup refresher has rolled its hour up (its
hour has no mark in `rollup_dirty`), and chunks are dropped only when no hour before the
cutoff waits for it. So aggregates of whole hours and days over a removed range keep
their values; what needs the readings themselves (raw series, 15-minute buckets,
`fn=delta`, partial hours) is refused for it by the API (docs/privacy.md).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from datahub.storage import db, retention
from datahub.storage.retention import DatasetCutoffs

log = logging.getLogger(__name__)

BATCH = 5_000  # rows per transaction: short locks, bounded WAL per commit


@dataclass
class RetentionReport:
    """What a run deleted (or, dry, would delete): rows per dataset, and whole chunks."""

    readings: dict[str, int] = field(default_factory=dict)
    uplinks: dict[str, int] = field(default_factory=dict)
    unregistered_uplinks: int = 0
    chunks_dropped: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "readings": self.readings,
            "uplinks": self.uplinks,
            "unregistered_uplinks": self.unregistered_uplinks,
            "chunks_dropped": self.chunks_dropped,
        }


def common_cutoff(cutoffs: Sequence[datetime | None]) -> datetime | None:
    """Return the time before which every dataset's raw data goes (None: some keep it)."""
    if not cutoffs or any(c is None for c in cutoffs):
        return None
    return min(c for c in cutoffs if c is not None)


def run(conn: psycopg.Connection, *, now: datetime, batch: int = BATCH) -> RetentionReport:
    """Delete raw data past retention on an autocommit connection, a batch per transaction."""
    report = RetentionReport()
    datasets = retention.select_cutoffs(conn, now=now)
    if db.has_timescaledb(conn):
        _drop_chunks(conn, datasets, report)
    for dataset in datasets:
        for deleted, delete, before in (
            (report.readings, retention.delete_old_readings, dataset.readings_before),
            (report.uplinks, retention.delete_old_uplinks, dataset.uplinks_before),
        ):
            if before is not None:
                deleted[dataset.slug] = _in_batches(
                    conn,
                    functools.partial(
                        delete, conn, dataset_id=dataset.dataset_id, before=before, limit=batch
                    ),
                    batch,
                )
    unregistered = common_cutoff([d.uplinks_before for d in datasets])
    if unregistered is not None:
        report.unregistered_uplinks = _in_batches(
            conn,
            functools.partial(
                retention.delete_old_uplinks,
                conn,
                dataset_id=None,
                before=unregistered,
                limit=batch,
            ),
            batch,
        )
    log.info("retention: %s", report.as_json())
    return report


def _drop_chunks(
    conn: psycopg.Connection, datasets: Sequence[DatasetCutoffs], report: RetentionReport
) -> None:
    uplinks_before = common_cutoff([d.uplinks_before for d in datasets])
    if uplinks_before is not None:
        with conn.transaction():
            report.chunks_dropped["uplink"] = retention.drop_chunks(
                conn, table="uplink", before=uplinks_before
            )
    readings_before = common_cutoff([d.readings_before for d in datasets])
    if readings_before is not None:
        with conn.transaction():
            # Every hour of a dropped chunk must be rolled up already.
            if retention.has_dirty_hours_before(conn, before=readings_before):
                return
            report.chunks_dropped["reading"] = retention.drop_chunks(
                conn, table="reading", before=readings_before
            )


def _in_batches(conn: psycopg.Connection, delete: Callable[[], int], batch: int) -> int:
    total = 0
    while True:
        with conn.transaction():
            deleted = delete()
        total += deleted
        if deleted < batch:
            return total
