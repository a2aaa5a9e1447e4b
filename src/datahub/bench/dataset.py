"""The query benchmark's data set: N devices x D days at 15-minute intervals x 3 metrics,
loaded by binary COPY into a database of its own and reused while its spec is unchanged.

The devices are decentlab/dl-sht35 climate sensors (temperature, relative humidity,
battery voltage), half in each city. Values follow a daily cycle with a per-device offset
and noise, deterministic for a given spec. After the load the rollups are rebuilt and the
tables analyzed; a comment on the database records the spec, which makes the next run
reuse the data instead of loading it again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from datahub.bench import services
from datahub.config import Settings
from datahub.domain import City, Device
from datahub.progress import Progress
from datahub.storage import bench, db, devices, migrate, readings, rollups, suppliers
from datahub.storage.suppliers import SupplierRow

log = logging.getLogger(__name__)

PROFILE = "decentlab/dl-sht35"
METRICS = ("temperature", "relative_humidity", "battery_voltage")
SUPPLIER = SupplierRow("bench-sensors", "Benchmark sensors", "other")
INTERVAL = timedelta(minutes=15)
DEVICES_PER_COPY = 100  # one transaction: 100 devices x 1 week x 672 slots x 3 = 201,600 rows
_NOISE = [math.sin(i * 12.9898) * 43758.5453 % 1 - 0.5 for i in range(10_007)]


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    devices: int = 2000
    days: int = 90
    end: str = ""  # ISO date of the (exclusive) last midnight; set when loaded

    @property
    def readings(self) -> int:
        return self.devices * self.days * int(timedelta(days=1) / INTERVAL) * len(METRICS)


@dataclass(frozen=True, slots=True)
class LoadTimes:
    """Seconds each step of a data set's load took (kept with the data set)."""

    copy_s: float  # binary COPY of the readings
    rollups_s: float  # rollups.rebuild of every day
    analyze_s: float  # VACUUM ANALYZE

    @property
    def total_s(self) -> float:
        return self.copy_s + self.rollups_s + self.analyze_s


@dataclass(frozen=True, slots=True)
class Dataset:
    """A loaded data set: where it is and what it holds."""

    settings: Settings  # pointing at the data set's database
    spec: DatasetSpec
    start: datetime
    end: datetime
    dev_euis: tuple[str, ...]
    load: LoadTimes | None  # of the run that loaded it; None if it did not say
    reused: bool  # loaded by an earlier run


def dev_eui(index: int) -> str:
    return f"BE{index:014X}"


def city_of(index: int) -> City:
    return City.DORTMUND if index % 2 == 0 else City.SCHWERTE


def ensure(
    settings: Settings, *, devices_count: int, days: int, prefix: str = "datahub_bench"
) -> Dataset:
    """Return the data set of this size, loading it first unless a finished load exists.

    Its database is `{prefix}_q{devices}x{days}`, on the server of `settings`.
    """
    dbname = f"{prefix}_q{devices_count}x{days}"
    target = services.database_settings(settings, dbname)
    with psycopg.connect(settings.conninfo, autocommit=True) as admin:
        marker = (
            bench.get_marker(admin, dbname=dbname)
            if bench.database_exists(admin, dbname=dbname)
            else None
        )
    wanted = {"devices": devices_count, "days": days}
    if marker is not None and all(marker.get(k) == v for k, v in wanted.items()):
        spec = DatasetSpec(**{k: marker[k] for k in ("devices", "days", "end")})
        migrate.upgrade(target)  # a data set from before a new migration gets it too
        log.info("reusing data set %s (%s)", dbname, marker)
        load = marker.get("load")
        times = LoadTimes(**load) if isinstance(load, dict) else None
        return _dataset(target, spec, load=times, reused=True)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    spec = DatasetSpec(devices=devices_count, days=days, end=end.date().isoformat())
    times = _load(settings, target, dbname, spec)
    return _dataset(target, spec, load=times, reused=False)


def _dataset(
    settings: Settings, spec: DatasetSpec, *, load: LoadTimes | None, reused: bool
) -> Dataset:
    end = datetime.fromisoformat(spec.end).replace(tzinfo=UTC)
    return Dataset(
        settings=settings,
        spec=spec,
        start=end - timedelta(days=spec.days),
        end=end,
        dev_euis=tuple(dev_eui(i) for i in range(spec.devices)),
        load=load,
        reused=reused,
    )


def _load(settings: Settings, target: Settings, dbname: str, spec: DatasetSpec) -> LoadTimes:
    with psycopg.connect(settings.conninfo, autocommit=True) as admin:
        bench.recreate_database(admin, dbname=dbname)
    migrate.upgrade(target)
    end = datetime.fromisoformat(spec.end).replace(tzinfo=UTC)
    start = end - timedelta(days=spec.days)
    with db.connect(target) as conn:
        # The supplier's own dataset stays restricted, as a new supplier's is: the query
        # benchmark reads it with an admin key (bench/query.py).
        ids = suppliers.upsert_suppliers(conn, suppliers=[SUPPLIER])
        fleet = [
            Device(dev_eui(i), f"bench sensor {i}", city_of(i), SUPPLIER.slug, PROFILE)
            for i in range(spec.devices)
        ]
        devices.upsert_devices(conn, devices=fleet, supplier_ids=ids)
        device_ids = [
            entry.device_id
            for _, entry in sorted(devices.select_registry(conn).items())
            if entry.profile == PROFILE
        ]
        conn.commit()
        started = time.monotonic()
        progress = Progress(f"loading {dbname}")
        done = 0
        # Week by week (TimescaleDB's chunk interval of `reading`), device by device.
        week = start
        while week < end:
            week_end = min(week + timedelta(days=7), end)
            for first in range(0, len(device_ids), DEVICES_PER_COPY):
                group = device_ids[first : first + DEVICES_PER_COPY]
                done += readings.copy_readings(conn, rows=_rows(group, week, week_end))
                conn.commit()
                progress.update(done, spec.readings, f"{week.date()}")
            week = week_end
        progress.finish()
        copied = time.monotonic()
        progress = Progress(f"rollups of {dbname}")
        day = start
        while day < end:  # the rollups, a week at a time
            rollups.rebuild(conn, start=day, end=min(day + timedelta(days=7), end))
            conn.commit()
            day += timedelta(days=7)
            progress.update(min((day - start).days, spec.days), spec.days, "days")
        progress.finish()
        rolled_up = time.monotonic()
        conn.autocommit = True
        bench.analyze(conn)
        times = LoadTimes(
            copy_s=copied - started,
            rollups_s=rolled_up - copied,
            analyze_s=time.monotonic() - rolled_up,
        )
        bench.set_marker(conn, dbname=dbname, marker={**asdict(spec), "load": asdict(times)})
    return times


def _rows(
    device_ids: list[int], start: datetime, end: datetime
) -> Iterator[tuple[datetime, int, str, float, None]]:
    slots = int((end - start) / INTERVAL)
    times = [start + k * INTERVAL for k in range(slots)]
    # A daily cycle peaking at 15:00 UTC, shared by every device, plus per-device offsets.
    cycle = [math.sin(2 * math.pi * ((t.hour + t.minute / 60) - 9) / 24) for t in times]
    for device_id in device_ids:
        offset = (device_id * 7919 % 1000) / 250 - 2
        for k, t in enumerate(times):
            noise = _NOISE[(device_id * 31 + k) % len(_NOISE)]
            temperature = round(11 + 6 * cycle[k] + offset + noise, 2)
            yield t, device_id, "temperature", temperature, None
            yield t, device_id, "relative_humidity", round(75 - 12 * cycle[k] - noise * 4, 1), None
            yield t, device_id, "battery_voltage", round(3.6 - (device_id % 50) / 100, 3), None
