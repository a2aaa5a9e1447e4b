"""Bulk files: every reading of an open dataset per UTC day and per month, as gzipped CSV.

`datahub opendata bulk` (run by a timer, docs/operations.md) writes what is due, each day
`opendata.bulk_delay_minutes` after it ended, and each month once its days are written.
A day is due when it has readings and no file yet, or when its readings changed since
its file was written (`bulk_stale`, marked by the rollup refresher from its own marks:
late uplinks, re-decoding); a month is due when it has no file yet or one of its days was
written after it. A month file holds its day files' rows in order.

Files are immutable and content-addressed: a file's name carries the first hex digits of
its SHA-256, so a new version (late data) is a new file, recorded in `bulk_file` with
its row count and checksum, and the old one is deleted after the commit. Gzip is written
without a time stamp or name, so the same rows always give the same bytes and hash.

`device_columns` is the one place where a device's identity and location are written into
a bulk row. The files are for anyone: devices are shown as to a caller without a grant
(docs/privacy.md), personal devices' readings are not in them.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from datahub.api.metric_index import MetricIndex
from datahub.api.query import format_time
from datahub.privacy import PrivacyClass, View
from datahub.storage import access, buckets, bulk_files, rollups

log = logging.getLogger(__name__)

HEADER = (
    "time",
    "device",
    "name",
    "city",
    "latitude",
    "longitude",
    "placement",
    "metric",
    "value",
    "unit",
)
DAY = timedelta(days=1)
BULK_PATH = "/v1/bulk"
# One bulk writer at a time; an arbitrary key of the advisory lock namespace ("bulk").
WRITER_LOCK = 0x62756C6B
# Marks refreshed per transaction before the files are written.
_REFRESH_BATCH = 5_000


def device_columns(
    dev_eui: str,
    name: str,
    city: str,
    latitude: float | None,
    longitude: float | None,
    placement: str | None,
) -> tuple[str, str, str, str, str, str]:
    """Render a device's identity and location as the bulk files show them."""
    return (
        dev_eui,
        name,
        city,
        "" if latitude is None else repr(latitude),
        "" if longitude is None else repr(longitude),
        placement or "",
    )


def bulk_rows(
    rows: Iterable[tuple[Any, ...]], metric_index: MetricIndex, view: View
) -> Iterator[list[str]]:
    """Render stored readings (storage.bulk_files.stream_readings) as CSV rows of HEADER,
    each device as anyone may see it (datahub/privacy.py)."""
    for row in rows:
        time, shown_id, name, city, latitude, longitude, placement, metric, value = row[:9]
        privacy_class, protected = PrivacyClass(row[9]), row[10]
        position = view.position(latitude, longitude, privacy_class, protected)
        yield [
            format_time(time),
            *device_columns(
                shown_id,
                view.name(name, shown_id, privacy_class, protected),
                city,
                position[0] if position else None,
                position[1] if position else None,
                placement,
            ),
            metric,
            repr(float(value)),
            metric_index.unit(metric) or "",
        ]


def file_url(base: str, dataset: str, period: str) -> str:
    """The URL a bulk file is downloaded from."""
    return f"{base.rstrip('/')}{BULK_PATH}/{dataset}/{period}.csv.gz"


def day_period(day: datetime) -> str:
    return day.strftime("%Y-%m-%d")


def month_start(time: datetime) -> datetime:
    return time.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


@dataclass
class BulkReport:
    """What one run did: files written per period, unchanged rewrites, files removed."""

    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: int = 0
    busy: bool = False  # another writer held the lock: nothing was done

    def as_json(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "busy": self.busy,
        }


@dataclass(frozen=True, slots=True)
class _Content:
    """A file written under a temporary name, and the name its content gives it."""

    temporary: Path
    name: str
    rows: int
    size: int
    sha256: str


class BulkWriter:
    """Writes the due files of every open dataset into `directory`.

    `conn` is in autocommit: each file is written in a transaction of its own.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        *,
        directory: Path,
        metric_index: MetricIndex,
        delay: timedelta,
        view: View,
    ) -> None:
        self.conn = conn
        self.directory = directory
        self.metric_index = metric_index
        self.delay = delay
        self.view = view

    def run(self, *, now: datetime) -> BulkReport:
        """Write every file due at `now`; one transaction per file."""
        report = BulkReport()
        self.directory.mkdir(parents=True, exist_ok=True)
        locked = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK,)).fetchone()
        if not locked or not locked[0]:
            report.busy = True
            return report
        try:
            self._refresh_rollups()
            before = buckets.floor_to(now - self.delay, DAY)
            with self.conn.transaction():
                datasets = access.select_open_datasets(self.conn)
                bulk_files.delete_stale_except(self.conn, dataset_ids=datasets)
            for dataset_id in datasets:
                self._write_dataset(dataset_id, before=before, report=report)
            report.removed = self._remove_unreferenced()
        finally:
            self.conn.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LOCK,))
        return report

    def _refresh_rollups(self) -> None:
        """Bring the rollups and their marks up to date, so late readings mark their days.

        Stops when the ingest's refresher holds the lock: what it refreshes marks its days
        too, for the next run.
        """
        while True:
            with self.conn.transaction():
                cleared = rollups.refresh(self.conn, limit=_REFRESH_BATCH)
            if cleared is None or cleared < _REFRESH_BATCH:
                return

    def _write_dataset(self, dataset_id: int, *, before: datetime, report: BulkReport) -> None:
        slug = self._slug(dataset_id)
        for day in bulk_files.select_days_to_write(self.conn, dataset_id=dataset_id, before=before):
            self._write_day(dataset_id, slug, day, report)
        closed = month_start(before)
        for start in self._months_due(dataset_id, before=closed):
            self._write_month(dataset_id, slug, start, report)

    def _slug(self, dataset_id: int) -> str:
        row = self.conn.execute("SELECT slug FROM dataset WHERE id = %s", (dataset_id,)).fetchone()
        assert row is not None
        return str(row[0])

    def _write_day(self, dataset_id: int, slug: str, day: datetime, report: BulkReport) -> None:
        period = day_period(day)
        with self.conn.transaction():
            # The mark goes first, then the readings are read: a reading committed after
            # this read marks the day again, for the next run.
            bulk_files.take_stale(self.conn, dataset_id=dataset_id, day=day)
            readings = bulk_files.stream_readings(
                self.conn, dataset_id=dataset_id, start=day, end=day + DAY
            )
            content = self._write(slug, period, bulk_rows(readings, self.metric_index, self.view))
            self._record(dataset_id, period, day, day + DAY, content, report)

    def _months_due(self, dataset_id: int, *, before: datetime) -> list[datetime]:
        files = bulk_files.list_files(self.conn, dataset_ids=[dataset_id], end=before)
        months = {f.period: f for f in files if f.is_month}
        due: dict[datetime, bool] = {}
        for f in files:
            if f.is_month or f.period_end > before:
                continue
            start = month_start(f.period_start)
            month = months.get(start.strftime("%Y-%m"))
            if month is None or f.written_at > month.written_at:
                due[start] = True
        return sorted(due)

    def _write_month(self, dataset_id: int, slug: str, start: datetime, report: BulkReport) -> None:
        end = next_month(start)
        period = start.strftime("%Y-%m")
        with self.conn.transaction():
            days = bulk_files.list_files(
                self.conn, dataset_ids=[dataset_id], months=False, start=start, end=end
            )
            content = self._write(slug, period, self._day_rows(days))
            self._record(dataset_id, period, start, end, content, report)

    def _day_rows(self, days: list[bulk_files.BulkFile]) -> Iterator[list[str]]:
        for day in days:
            with gzip.open(self.directory / day.name, "rt", encoding="utf-8", newline="") as f:
                reader = csv.reader(f)
                next(reader)  # each day file's header; the month file has one of its own
                yield from reader

    def _write(self, slug: str, period: str, rows: Iterable[list[str]]) -> _Content:
        """Write rows under a temporary name in the dataset's folder; return the content."""
        folder = self.directory / slug / period[:4]
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".writing-", suffix=".csv.gz")
        digest = hashlib.sha256()
        count = 0
        with os.fdopen(handle, "wb") as raw:
            hashing = _HashingWriter(raw, digest)
            with (
                gzip.GzipFile(filename="", mode="wb", fileobj=hashing, mtime=0) as packed,
                io.TextIOWrapper(packed, encoding="utf-8", newline="") as text,
            ):
                writer = csv.writer(text, lineterminator="\n")
                writer.writerow(HEADER)
                for row in rows:
                    writer.writerow(row)
                    count += 1
            raw.flush()
            os.fsync(raw.fileno())
        sha = digest.hexdigest()
        name = f"{slug}/{period[:4]}/{slug}_{period}_{sha[:16]}.csv.gz"
        return _Content(Path(temporary), name, rows=count, size=hashing.size, sha256=sha)

    def _record(
        self,
        dataset_id: int,
        period: str,
        start: datetime,
        end: datetime,
        content: _Content,
        report: BulkReport,
    ) -> None:
        """Put the file in place and record it (in the caller's transaction), unless the
        current version holds the same bytes. The replaced version's file stays until the
        end of the run, when every file no row refers to is deleted."""
        current = self.conn.execute(
            "SELECT sha256 FROM bulk_file WHERE dataset_id = %s AND period = %s",
            (dataset_id, period),
        ).fetchone()
        if current is not None and current[0] == content.sha256:
            content.temporary.unlink()
            report.unchanged += 1
            return
        os.replace(content.temporary, self.directory / content.name)
        bulk_files.upsert_file(
            self.conn,
            dataset_id=dataset_id,
            period=period,
            start=start,
            end=end,
            name=content.name,
            rows=content.rows,
            size=content.size,
            sha256=content.sha256,
        )
        report.written.append(content.name)

    def _remove_unreferenced(self) -> int:
        """Delete files no row refers to: replaced versions, and leftovers of a crash."""
        referenced = bulk_files.list_names(self.conn)
        removed = 0
        for path in sorted(self.directory.glob("*/*/*.csv.gz")):
            name = path.relative_to(self.directory).as_posix()
            if name not in referenced:
                path.unlink(missing_ok=True)
                removed += 1
        for path in self.directory.glob("*/*/.writing-*"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed


class _HashingWriter(io.RawIOBase):
    """A binary sink that hashes and counts what passes through to `target`."""

    def __init__(self, target: Any, digest: Any) -> None:
        self.target = target
        self.digest = digest
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.digest.update(chunk)
        self.size += len(chunk)
        self.target.write(chunk)
        return len(chunk)
