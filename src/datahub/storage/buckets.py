"""Time buckets: where they start, how their readings become one value, and whose they are.

A bucket's value is computed one of three ways, and each aggregate function renders
all three (`AggregateFn.raw`, `.partial`, `.merge`):

    raw      from the bucket's readings `r`                   avg(r.value)
    partial  from one partial row `p`, already merged         p.sum / p.count
    merge    from the bucket's partial rows `p`               sum(p.sum) / sum(p.count)

A partial row is what the rollups keep per device, metric and bucket: count, sum, min,
max, and the last value with its time, in this order. It is made from readings
(`partial_of_readings`), from one reading (`partial_of_reading`), or from partials of
smaller buckets (`partial_of_partials`); so any of them can stand for any other.
`fn=delta` needs the readings in order and has no partial form.

A query's scope says whose readings count: one device (`DeviceScope`) or the devices of
a city (`CityScope`), in both cases only the datasets the caller may see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar

from psycopg import sql

from datahub.storage.devices import VISIBLE_DEVICE

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


class AggregateFn(StrEnum):
    """How the readings of one time bucket become one value."""

    AVG = "avg"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    LAST = "last"
    DELTA = "delta"  # counters only: the increase within each bucket, across resets and wraps

    @property
    def has_partials(self) -> bool:
        """Whether partial rows can answer it, so that the rollups serve it."""
        return self in _SQL

    def raw(self, r: str = "r") -> sql.Composed:
        """The value of a bucket's readings `r` (not for delta, which needs them in order)."""
        return sql.SQL(_SQL[self].raw).format(r=sql.Identifier(r))

    def partial(self, p: str) -> sql.Composed:
        """The value of one partial row `p` that holds a whole bucket."""
        return sql.SQL(_SQL[self].partial).format(p=sql.Identifier(p))

    def merge(self, p: str) -> sql.Composed:
        """The value of a bucket's partial rows `p`, merged."""
        return sql.SQL(_SQL[self].merge).format(p=sql.Identifier(p))


@dataclass(frozen=True, slots=True)
class _FnSql:
    raw: str
    partial: str
    merge: str


_SQL = {
    AggregateFn.AVG: _FnSql(
        "avg({r}.value)", "{p}.sum / {p}.count", "sum({p}.sum) / sum({p}.count)"
    ),
    AggregateFn.MIN: _FnSql("min({r}.value)", "{p}.min", "min({p}.min)"),
    AggregateFn.MAX: _FnSql("max({r}.value)", "{p}.max", "max({p}.max)"),
    AggregateFn.SUM: _FnSql("sum({r}.value)", "{p}.sum", "sum({p}.sum)"),
    AggregateFn.COUNT: _FnSql("count(*)::float8", "{p}.count::float8", "sum({p}.count)::float8"),
    # Standard SQL for TimescaleDB's last(value, time), so plain PostgreSQL runs it too.
    AggregateFn.LAST: _FnSql(
        "(array_agg({r}.value ORDER BY {r}.time DESC))[1]",
        "{p}.last_value",
        "(array_agg({p}.last_value ORDER BY {p}.last_time DESC))[1]",
    ),
}


def partial_of_readings(r: str = "r") -> sql.Composed:
    """The partial columns of a bucket's readings `r`."""
    return sql.SQL(
        "count(*) AS count, sum({r}.value) AS sum, min({r}.value) AS min, max({r}.value) AS max,"
        " max({r}.time) AS last_time, {last} AS last_value"
    ).format(r=sql.Identifier(r), last=AggregateFn.LAST.raw(r))


def partial_of_reading(r: str = "r") -> sql.Composed:
    """The partial columns of one reading `r`: a bucket of one."""
    return sql.SQL(
        "1 AS count, {r}.value AS sum, {r}.value AS min, {r}.value AS max,"
        " {r}.time AS last_time, {r}.value AS last_value"
    ).format(r=sql.Identifier(r))


def partial_of_partials(p: str, *, last: bool = True) -> sql.Composed:
    """The partial columns of a bucket's partial rows `p`, merged.

    `last=False` leaves the last value NULL: only fn=last needs it, and its ordered
    aggregate sorts every row it merges.
    """
    return sql.SQL(
        "sum({p}.count) AS count, sum({p}.sum) AS sum, min({p}.min) AS min, max({p}.max) AS max,"
        " max({p}.last_time) AS last_time, {last} AS last_value"
    ).format(
        p=sql.Identifier(p),
        last=AggregateFn.LAST.merge(p) if last else sql.SQL("NULL::float8"),
    )


@dataclass(frozen=True, slots=True)
class DeviceScope:
    """One device's readings, as one series.

    `dataset_ids` None: no filter by dataset (the caller has checked the device is visible).
    """

    device_id: int
    dataset_ids: tuple[int, ...] | None = None

    # The condition on a device row `d`, with the placeholders of `params`.
    WHERE: ClassVar[str] = f"d.id = %(device_id)s AND {VISIBLE_DEVICE}"
    per_device: ClassVar[bool] = True

    def params(self) -> dict[str, object]:
        """The values of the placeholders of `where`."""
        return {"device_id": self.device_id, "dataset_ids": _ids(self.dataset_ids)}


@dataclass(frozen=True, slots=True)
class CityScope:
    """The readings of every device of a city in the datasets a caller may see.

    `per_device`: one series per device; otherwise one series for the city.
    `dataset_ids` None: every dataset.
    """

    city: str
    per_device: bool = False
    dataset_ids: tuple[int, ...] | None = None

    # The condition on a device row `d`, with the placeholders of `params`.
    WHERE: ClassVar[str] = f"d.city = %(city)s AND {VISIBLE_DEVICE}"

    def params(self) -> dict[str, object]:
        """The values of the placeholders of `where`."""
        return {"city": self.city, "dataset_ids": _ids(self.dataset_ids)}


BucketScope = DeviceScope | CityScope


def series_of(per_device: bool) -> sql.SQL:
    """The series a device row `d` belongs to: its DevEUI, or NULL for a city-wide series."""
    return sql.SQL("d.dev_eui" if per_device else "NULL::text")


def _ids(ids: tuple[int, ...] | None) -> list[int] | None:
    return list(ids) if ids is not None else None
