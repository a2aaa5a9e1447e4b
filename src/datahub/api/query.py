"""Parameter parsing shared by the routes: times, ranges, buckets, metrics, page sizes, cursors.

Everything here raises `BadRequest` with a detail that says what to change; nothing here
touches the database.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, WithJsonSchema

from datahub import privacy
from datahub.api.metric_index import MetricIndex
from datahub.config import ApiSettings
from datahub.domain import City
from datahub.errors import BadRequest
from datahub.storage.buckets import BUCKET_ORIGIN

DEFAULT_RANGE = timedelta(hours=24)

_DEV_EUI = re.compile(r"^[0-9A-Fa-f]{16}$")
_SPACE_OFFSET = re.compile(r"([T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:\d{2})$")

T = TypeVar("T")


class Bucket(StrEnum):
    """Width of an aggregate's time buckets."""

    MINUTES_15 = "15m"
    HOUR = "1h"
    DAY = "1d"

    @property
    def width(self) -> timedelta:
        return _BUCKET_WIDTHS[self]


_BUCKET_WIDTHS = {
    Bucket.MINUTES_15: timedelta(minutes=15),
    Bucket.HOUR: timedelta(hours=1),
    Bucket.DAY: timedelta(days=1),
}


class Grouping(StrEnum):
    """What one aggregate series stands for."""

    DEVICE = "device"
    CITY = "city"


class OutputFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


def parse_time(value: Any) -> datetime:
    """Parse an RFC 3339 time with an offset (`Z` or `+02:00`) into UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        # An unencoded "+" in a query string arrives as a space: "…T12:00:00 02:00".
        text = _SPACE_OFFSET.sub(r"\1+\2", value)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an RFC 3339 time; write e.g. 2024-05-01T12:00:00Z"
            ) from None
    else:
        raise ValueError("expected an RFC 3339 time such as 2024-05-01T12:00:00Z")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(
            f"{value!s} has no UTC offset; add one, e.g. {parsed.isoformat()}Z or "
            f"{parsed.isoformat()}+02:00"
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 lies before year 1 in UTC
        raise ValueError(f"{value!s} is out of range once converted to UTC") from None


# A query parameter holding an RFC 3339 time; naive times are rejected, aware ones made UTC.
Rfc3339 = Annotated[datetime, BeforeValidator(parse_time)]


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _any_case(words: Sequence[str]) -> str:
    """A pattern matching any of `words` in any case (JSON Schema patterns have no flags)."""
    either = "|".join("".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in w) for w in words)
    return f"^({either})$"


# A city in a query, in any case (`Dortmund`, `DORTMUND`), as DevEUIs are; answered
# lower-case.
CityName = Annotated[
    City,
    BeforeValidator(_lower),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _any_case([c.value for c in City]),
            "description": "`dortmund` or `schwerte`, in any case",
        }
    ),
]


def parse_dev_eui(value: str) -> str:
    """Check a DevEUI is 16 hex digits; return it upper-case, as stored."""
    if not _DEV_EUI.match(value):
        raise BadRequest(f"dev_eui {value!r} is not 16 hexadecimal digits (e.g. 70B3D57ED0001234)")
    return value.upper()


def check_metric(metric: str, metric_index: MetricIndex) -> str:
    """Return `metric` if the metric_index knows it."""
    if metric not in metric_index.metrics:
        known = ", ".join(metric_index.metrics) or "none"
        raise BadRequest(f"unknown metric {metric!r}; known metrics: {known}")
    return metric


def time_range(
    start: datetime | None, end: datetime | None, *, now: datetime
) -> tuple[datetime, datetime]:
    """Resolve `from` and `to` into [start, end); `to` defaults to now, `from` to 24 h before."""
    if end is None:
        end = now
    if start is None:
        try:
            start = end - DEFAULT_RANGE
        except OverflowError:
            raise BadRequest(f"to ({format_time(end)}) leaves no room for a default from") from None
    if start >= end:
        raise BadRequest(f"from ({format_time(start)}) must be before to ({format_time(end)})")
    return start, end


def check_raw_range(start: datetime, end: datetime, *, max_days: int) -> None:
    """Refuse a raw-series range longer than `max_days`."""
    if end - start > timedelta(days=max_days):
        raise BadRequest(
            f"the range from {format_time(start)} to {format_time(end)} is longer than "
            f"{max_days} days, the most a raw series may span; narrow it, or use "
            "/v1/readings/aggregate for longer ranges"
        )


def count_buckets(start: datetime, end: datetime, width: timedelta) -> int:
    """Count the buckets of `width` (aligned like date_bin) that [start, end) touches."""
    first = (start - BUCKET_ORIGIN) // width
    last = (end - BUCKET_ORIGIN - timedelta(microseconds=1)) // width
    return last - first + 1


def check_bucket_count(start: datetime, end: datetime, bucket: Bucket, *, max_buckets: int) -> None:
    """Refuse a range that spans more than `max_buckets` buckets."""
    spanned = count_buckets(start, end, bucket.width)
    if spanned <= max_buckets:
        return
    wider = [
        b.value
        for b in Bucket
        if b.width > bucket.width and count_buckets(start, end, b.width) <= max_buckets
    ]
    longest = bucket.width * max_buckets
    advice = f"narrow the range to at most {_format_span(longest)}"
    if wider:
        advice = f"use bucket={wider[0]} or " + advice
    raise BadRequest(
        f"the range from {format_time(start)} to {format_time(end)} spans {spanned} buckets "
        f"of {bucket.value}, more than the {max_buckets} allowed; {advice}"
    )


def page_size(limit: int | None, api: ApiSettings) -> int:
    """Return the page size asked for, or the default; refuse one above the maximum."""
    if limit is None:
        return api.page_size_default
    if limit > api.page_size_max:
        raise BadRequest(f"limit {limit} is over the maximum page size {api.page_size_max}")
    return limit


def split_page(rows: Sequence[T], limit: int) -> tuple[Sequence[T], bool]:
    """Split rows fetched with limit + 1 into the page and whether another page follows."""
    return rows[:limit], len(rows) > limit


def encode_reading_cursor(time: datetime, metric: str) -> str:
    """Encode the keyset position after a reading as an opaque cursor."""
    return _encode(["r", format_time(time), metric])


def decode_reading_cursor(cursor: str) -> tuple[datetime, str]:
    """Decode a cursor made by `encode_reading_cursor`."""
    fields = _decode(cursor, kind="r", arity=2)
    try:
        return parse_time(fields[0]), fields[1]
    except ValueError:
        raise _bad_cursor() from None


def encode_device_cursor(shown_id: str) -> str:
    """Encode the keyset position after a device, by the id it is shown by, as an opaque
    cursor."""
    return _encode(["d", shown_id])


def decode_device_cursor(cursor: str) -> str:
    """Decode a cursor made by `encode_device_cursor`."""
    (shown_id,) = _decode(cursor, kind="d", arity=1)
    if not (_DEV_EUI.match(shown_id) or privacy.is_public_id(shown_id)):
        raise _bad_cursor()
    return shown_id


def format_time(value: datetime) -> str:
    """Render a time as RFC 3339 in UTC with a `Z`."""
    text = value.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def _encode(fields: list[str]) -> str:
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, *, kind: str, arity: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fields = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _bad_cursor() from None
    if (
        not isinstance(fields, list)
        or len(fields) != arity + 1
        or fields[0] != kind
        or not all(isinstance(f, str) and "\x00" not in f for f in fields[1:])
    ):
        raise _bad_cursor()
    return fields[1:]


def _bad_cursor() -> BadRequest:
    return BadRequest(
        "cursor is not valid here; pass the next_cursor of the previous page unchanged"
    )


def _format_span(span: timedelta) -> str:
    minutes = span // timedelta(minutes=1)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min")]
    return " ".join(f"{n} {unit}" for n, unit in parts if n) or "0 min"
