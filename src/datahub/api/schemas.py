"""The API's request and response models: `…Query` for query strings, `…Out` for bodies.

Storage rows never reach a response directly; routes copy the fields they mean to show.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from datahub.api.query import Bucket, CityName, Grouping, OutputFormat, Rfc3339
from datahub.domain import SLUG, City, LicenceClass, Placement
from datahub.privacy import PrivacyClass
from datahub.storage.buckets import AggregateFn

# Every time in a response is UTC, rendered by pydantic as RFC 3339 with a `Z`.
UtcTime = Annotated[datetime, AfterValidator(lambda t: t.astimezone(UTC))]


class InModel(BaseModel):
    """The base of query strings and request bodies."""

    # A misspelt parameter (`metrics=`, `start=`) or field is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutModel(BaseModel):
    """The base of response bodies."""

    model_config = ConfigDict(frozen=True)


# Query models ---------------------------------------------------------------------------

Limit = Annotated[
    int | None,
    Field(ge=1, description="page size; default and maximum come from the settings (api.*)"),
]
Cursor = Annotated[
    str | None, Field(description="the `next_cursor` of the previous page, unchanged")
]
From = Annotated[
    Rfc3339 | None,
    Field(
        alias="from",
        description="start, inclusive, RFC 3339 with offset; default: 24 h before `to`",
    ),
]
To = Annotated[
    Rfc3339 | None,
    Field(alias="to", description="end, exclusive, RFC 3339 with offset; default: now"),
]
# Anything but a slug (domain.SLUG), NUL bytes included, is a 422.
Supplier = Annotated[
    str | None,
    Field(pattern=SLUG.pattern, description="supplier slug, e.g. `dew21`"),
]
Format = Annotated[
    OutputFormat | None,
    Field(description="`csv` for text/csv; otherwise the Accept header decides (JSON default)"),
]


Dataset = Annotated[
    str | None,
    Field(pattern=SLUG.pattern, description="dataset slug, e.g. `klima-dortmund`"),
]


class DeviceListQuery(InModel):
    city: CityName | None = None
    supplier: Supplier = None
    dataset: Dataset = None
    metric: str | None = Field(default=None, description="only devices whose profile reports it")
    limit: Limit = None
    cursor: Cursor = None


class ReadingsQuery(InModel):
    metric: str | None = Field(default=None, description="one metric; default: every metric")
    start: From = None
    end: To = None
    limit: Limit = None
    cursor: Cursor = None
    format: Format = None


class AggregateQuery(InModel):
    metric: str
    bucket: Bucket = Bucket.HOUR
    fn: AggregateFn = AggregateFn.AVG
    start: From = None
    end: To = None
    device: str | None = Field(default=None, description="one device's DevEUI")
    city: CityName | None = Field(default=None, description="every device of a city")
    dataset: Dataset = None
    group: Grouping | None = Field(
        default=None,
        description="with `city`: `city` (default) for one series, `device` for one per device",
    )
    format: Format = None


class LatestQuery(InModel):
    city: CityName | None = None
    metric: str | None = None
    supplier: Supplier = None
    dataset: Dataset = None
    format: Format = None


# Response models ------------------------------------------------------------------------


class ErrorOut(OutModel):
    error: str = Field(description="the error's class name", examples=["BadRequest"])
    detail: str = Field(description="what went wrong and what to change")


class LiveOut(OutModel):
    status: Literal["ok"] = "ok"


class ReplicaOut(OutModel):
    reachable: bool = Field(description="whether the replica answered its last check")
    staleness_s: float | None = Field(
        description="the most recent writes, in seconds, a read on it may miss now; null "
        "before its first measurement"
    )
    max_lag_s: float = Field(description="database.replica_max_lag_s: reads on it stay within")


class ReadyOut(OutModel):
    status: Literal["ok"] = "ok"
    reads: Literal["primary", "replica"] = Field(description="where reads go now")
    replica: ReplicaOut | None = Field(
        default=None, description="the streaming replica reads go to; null without one"
    )


class HealthOut(OutModel):
    status: Literal["ok"] = "ok"
    database: Literal["ok"] = "ok"
    timescaledb: str | None = Field(description="the TimescaleDB version; null without it")


class MetricOut(OutModel):
    name: str
    unit: str
    description: str
    profiles: list[str] = Field(description="device profiles that report this metric")


class MetricListOut(OutModel):
    items: list[MetricOut]


class SupplierOut(OutModel):
    slug: str
    name: str


class LocationOut(OutModel):
    latitude: float
    longitude: float


# What a device is shown by (docs/privacy.md).
SHOWN_ID = (
    "the DevEUI; for a device of a private owner or a personal one, shown to a caller "
    "without a grant for its dataset, its public id `pub-…` instead"
)


class DeviceOut(OutModel):
    dev_eui: str = Field(description=SHOWN_ID)
    name: str
    city: City
    supplier: SupplierOut
    dataset: str = Field(description="slug of the dataset the device belongs to")
    profile: str
    reporting_interval_s: int | None = Field(
        description="the profile's typical seconds between uplinks; null if unknown"
    )
    location: LocationOut | None
    last_seen: UtcTime | None
    metrics: list[str] = Field(description="the metrics the device's profile reports")
    counters: list[str] = Field(
        description="those of `metrics` that are running totals: ask for them with fn=delta"
    )
    placement: Placement | None = Field(description="indoor or outdoor air; null: not said")
    area: str | None = Field(description="the district or zone it belongs to; null: not said")
    privacy: PrivacyClass = Field(
        description="its privacy class: what callers without a grant see of it (docs/privacy.md)"
    )


class DevicePageOut(OutModel):
    items: list[DeviceOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


class LicenceOut(OutModel):
    dataset: str = Field(description="slug of the dataset the data comes from")
    licence: str = Field(
        description="licence identifier, e.g. `dl-de/by-2-0`; `none`: no licence given"
    )
    name: str = Field(description="the licence's name; `no licence given` for `none`")
    url: str | None = Field(description="where its terms are; null only for `none`")
    attribution: str = Field(description="the text to show wherever the data is shown")


class LicenceRefOut(OutModel):
    id: str = Field(
        description="licence identifier, e.g. `dl-de/by-2-0` or `CC-BY-4.0`; `none`: no "
        "licence given"
    )
    name: str = Field(description="the licence's name; `no licence given` for `none`")
    url: str | None = Field(description="where its terms are; null only for `none`")


class DatasetOut(OutModel):
    slug: str
    name: str
    supplier: SupplierOut
    licence_class: LicenceClass = Field(
        description="`open`: anyone reads it; `restricted`: granted consumers only; "
        "`commercial`: granted consumers, priced for commercial use"
    )
    licence: LicenceRefOut
    attribution: str = Field(description="the text to show wherever the data is shown")
    metrics: list[str] = Field(description="the metrics its devices report")
    device_count: int


class DatasetListOut(OutModel):
    items: list[DatasetOut]


class ReadingOut(OutModel):
    time: UtcTime
    metric: str
    value: float
    unit: str | None
    decoder: str | None = Field(
        default=None,
        description="the decoder and mapping that produced the reading "
        "(`vendor/model@version#mapping`); null for readings stored before it was recorded",
    )


class ReadingPageOut(OutModel):
    dev_eui: str = Field(description=SHOWN_ID)
    start: UtcTime = Field(serialization_alias="from")
    end: UtcTime = Field(serialization_alias="to")
    items: list[ReadingOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")
    licences: list[LicenceOut] = Field(description="the licence of the data on this page")


class PointOut(OutModel):
    time: UtcTime = Field(description="start of the bucket")
    value: float
    count: int = Field(description="readings in the bucket")


class SeriesOut(OutModel):
    device: str | None = Field(description="DevEUI; null for a city-wide series")
    city: City
    points: list[PointOut]


class AggregateOut(OutModel):
    metric: str
    unit: str | None
    bucket: Bucket
    fn: AggregateFn
    start: UtcTime = Field(serialization_alias="from")
    end: UtcTime = Field(serialization_alias="to")
    series: list[SeriesOut]
    licences: list[LicenceOut] = Field(description="the licences of the data aggregated")


class LatestOut(OutModel):
    dev_eui: str = Field(description=SHOWN_ID)
    name: str
    city: City
    metric: str
    unit: str | None
    time: UtcTime
    value: float


class LatestListOut(OutModel):
    items: list[LatestOut]
    licences: list[LicenceOut] = Field(description="the licences of the values listed")


_ERROR_DESCRIPTIONS = {
    400: "a parameter is out of range or inconsistent (BadRequest)",
    401: "the API key is malformed, unknown or revoked (Unauthorized)",
    403: "the key lacks the scope or grant this needs (Forbidden)",
    404: "no such resource, or none the caller may see (NotFound)",
    406: "no representation the Accept header takes; name one with `format` (NotAcceptable)",
    410: "raw readings from before a dataset's retention, which are deleted; aggregates "
    "of whole hours come from the rollups (Gone)",
    409: "a duplicate, such as a slug in use, or an Idempotency-Key used for another "
    "request (Conflict)",
    429: "over the rate limit or the monthly quota; retry after Retry-After seconds "
    "(TooManyRequests)",
    422: "a parameter is malformed: wrong type, unknown value or unknown name "
    "(ValidationError), or a body breaks a rule (Unprocessable)",
    500: "an unexpected error, logged on the server (InternalError)",
    503: "the database is unreachable; retry after the Retry-After seconds (ServiceUnavailable)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Document a route's error responses, all rendered as `ErrorOut`."""
    return {
        status: {"model": ErrorOut, "description": _ERROR_DESCRIPTIONS[status]}
        for status in (*statuses, 500)
    }


CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "JSON by default; CSV with a header row for `format=csv` or "
        '`Accept: text/csv`. A following page is linked by a `Link: <url>; rel="next"` header.',
    }
}
