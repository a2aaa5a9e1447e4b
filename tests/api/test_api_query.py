"""Pure parameter parsing: times, bucket counts, cursors, page sizes (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from datahub.api import query
from datahub.api.query import Bucket
from datahub.config import ApiSettings
from datahub.errors import BadRequest

T = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T00:00:00Z", T),
        ("2024-05-01T02:00:00+02:00", T),
        ("2024-04-30T20:00:00-04:00", T),
        ("2024-05-01T00:00:00.250Z", T + timedelta(milliseconds=250)),
        ("2024-05-01 00:00:00Z", T),
        ("2024-05-01T02:00:00 02:00", T),  # "+02:00" sent without percent-encoding
    ],
)
def test_parse_time_to_utc(text: str, expected: datetime) -> None:
    parsed = query.parse_time(text)

    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["2024-05-01T00:00:00", "2024-05-01 00:00", "2024-05-01", "05/01/2024", "now"]
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        query.parse_time(text)


@pytest.mark.parametrize(
    ("start", "end", "bucket", "expected"),
    [
        (T, T + timedelta(hours=1), Bucket.HOUR, 1),
        (T, T + timedelta(hours=1, microseconds=1), Bucket.HOUR, 2),
        (T + timedelta(minutes=59), T + timedelta(hours=1, minutes=1), Bucket.HOUR, 2),
        (T, T + timedelta(days=1), Bucket.MINUTES_15, 96),
        (T + timedelta(hours=23), T + timedelta(hours=25), Bucket.DAY, 2),
        (T, T + timedelta(minutes=1), Bucket.DAY, 1),
    ],
    ids=["one", "one-past", "straddle", "day-of-15m", "midnight", "partial-day"],
)
def test_count_buckets(start: datetime, end: datetime, bucket: Bucket, expected: int) -> None:
    assert query.count_buckets(start, end, bucket.width) == expected


def test_reading_cursor_round_trip() -> None:
    position = (T + timedelta(microseconds=7), "water_level")

    cursor = query.encode_reading_cursor(*position)

    assert query.decode_reading_cursor(cursor) == position
    assert "=" not in cursor


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        query.encode_device_cursor("70B3D57ED0000001"),
        "WyJyIiwibm90LWEtdGltZSIsIngiXQ",  # ["r","not-a-time","x"]
        "eyJhIjoxfQ",  # {"a":1}
    ],
)
def test_bad_reading_cursors(cursor: str) -> None:
    with pytest.raises(BadRequest, match="cursor is not valid"):
        query.decode_reading_cursor(cursor)


@pytest.mark.parametrize(("limit", "expected"), [(None, 1000), (1, 1), (10_000, 10_000)])
def test_page_size(limit: int | None, expected: int) -> None:
    assert query.page_size(limit, ApiSettings()) == expected


def test_page_size_over_max() -> None:
    with pytest.raises(BadRequest, match="limit 10001 is over the maximum page size 10000"):
        query.page_size(10_001, ApiSettings())
