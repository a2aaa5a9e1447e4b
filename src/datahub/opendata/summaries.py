"""Open summaries of datasets that need not be open: counts per district, never a device.

A cell is a city's area (a district of waste bins, a parking zone) and shows figures only
when at least k devices (`opendata.min_cell_devices`) stand behind them, so no cell tells
about one bin or one bay; a cell under k is named but shows nothing. Only devices whose
newest reading is fresh (`opendata.summary_max_age_hours`) count as reporting now.

The counting is pure: storage selects the devices and their readings, this module groups.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from datahub.domain import LevelCalibration
from datahub.storage.readings import BucketRow, LatestRow
from datahub.storage.summaries import SummaryDevice

# A bin counts as full above this share of its height (the waste companies' threshold).
FULL_ABOVE = 0.8

Cell = tuple[str, str | None]  # (city, area)


@dataclass(frozen=True, slots=True)
class WasteCell:
    city: str
    area: str | None
    bins: int
    full: int


@dataclass(frozen=True, slots=True)
class ParkingHour:
    time: datetime
    bays: int
    free: float


@dataclass(slots=True)
class ParkingCell:
    city: str
    area: str | None
    bays: int = 0
    free: int = 0
    hours: list[ParkingHour] = field(default_factory=list)


def waste_cells(
    devices: Mapping[str, SummaryDevice], latest: Iterable[LatestRow], *, since: datetime
) -> list[WasteCell]:
    """Count per cell the calibrated bins with a reading since `since`, and the full ones."""
    bins: dict[Cell, int] = defaultdict(int)
    full: dict[Cell, int] = defaultdict(int)
    for row in latest:
        device = devices.get(row.dev_eui)
        if device is None or row.time < since:
            continue
        if device.level_empty is None or device.level_full is None:
            continue  # without calibration a distance says nothing about the fill
        level = LevelCalibration(empty=device.level_empty, full=device.level_full)
        cell = (device.city, device.area)
        bins[cell] += 1
        full[cell] += level.fill(row.value) > FULL_ABOVE
    return [WasteCell(c, a, bins[(c, a)], full[(c, a)]) for c, a in _ordered(bins)]


def parking_cells(
    devices: Mapping[str, SummaryDevice],
    latest: Iterable[LatestRow],
    hours: Iterable[BucketRow],
    *,
    since: datetime,
    k: int,
) -> list[ParkingCell]:
    """Count per cell the bays with a state since `since` and the free ones, and per hour
    the bays that reported and the free bays on average (hours under k bays left out)."""
    cells: dict[Cell, ParkingCell] = {}

    def cell_of(device: SummaryDevice) -> ParkingCell:
        key = (device.city, device.area)
        if key not in cells:
            cells[key] = ParkingCell(device.city, device.area)
        return cells[key]

    for row in latest:
        device = devices.get(row.dev_eui)
        if device is None or row.time < since:
            continue
        cell = cell_of(device)
        cell.bays += 1
        cell.free += round(row.value) == 0
    per_hour: dict[tuple[Cell, datetime], list[float]] = defaultdict(list)
    for bucket in hours:
        device = devices.get(bucket.dev_eui or "")
        if device is not None:
            # The mean occupancy of a bay over an hour is the share of it the bay was taken.
            per_hour[((device.city, device.area), bucket.time)].append(1.0 - bucket.value)
    for (key, time), free in sorted(per_hour.items(), key=lambda item: item[0][1]):
        if len(free) >= k:
            cell = cells.setdefault(key, ParkingCell(*key))
            cell.hours.append(ParkingHour(time, len(free), round(sum(free), 1)))
    return [cells[key] for key in _ordered(cells)]


def _ordered(cells: Iterable[Cell]) -> list[Cell]:
    """Cells by city, then area, the cell without an area last."""
    return sorted(cells, key=lambda c: (c[0], c[1] is None, c[1] or ""))
