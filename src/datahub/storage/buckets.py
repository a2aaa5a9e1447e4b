"""Time buckets: where they start, so that every query and rollup cuts time alike."""

from __future__ import annotations

from datetime import datetime, timedelta

# date_bin's origin: a Monday, equal to TimescaleDB time_bucket's default origin, so
# buckets line up with TimescaleDB's, and 1d buckets start at midnight UTC.
BUCKET_ORIGIN = datetime.fromisoformat("2000-01-03T00:00:00+00:00")


def floor_to(time: datetime, width: timedelta) -> datetime:
    """The start of the bucket of `width` holding `time`, as `date_bin` computes it."""
    return BUCKET_ORIGIN + ((time - BUCKET_ORIGIN) // width) * width


def ceil_to(time: datetime, width: timedelta) -> datetime:
    """The first bucket start of `width` at or after `time`."""
    start = floor_to(time, width)
    return start if start == time else start + width
