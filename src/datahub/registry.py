"""The device registry file: which profile decodes each device, whose it is, and where."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from datahub.domain import SLUG, City, Device, LevelCalibration, Location, Placement
from datahub.errors import DatahubError
from datahub.storage.suppliers import SupplierRow

COLUMNS = ("dev_eui", "name", "city", "supplier", "profile")
OPTIONAL = (
    "supplier_name",
    "supplier_kind",
    "dataset",
    "latitude",
    "longitude",
    "placement",
    "area",
    "level_empty",
    "level_full",
)
# Attributes a file without their columns leaves as they are (storage.devices.KEEPABLE).
_KEPT_WITHOUT = {"placement": ("placement",), "area": ("area",), "level": ("level_empty",)}
_HEX16 = re.compile(r"^[0-9A-Fa-f]{16}$")
MAX_AREA_LENGTH = 100


class RegistryFileError(DatahubError):
    """A registry file that cannot be imported; the message names the line."""


@dataclass(frozen=True)
class RegistryFile:
    devices: tuple[Device, ...]
    suppliers: tuple[SupplierRow, ...]
    keep: frozenset[str] = frozenset()  # attributes the file does not set (no column)


def read_registry_csv(path: Path, *, profiles: Iterable[str]) -> RegistryFile:
    """Read and validate a registry CSV; every error names its line."""
    known = set(profiles)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        present = set(reader.fieldnames or ())
        missing = [c for c in COLUMNS if c not in present]
        if missing:
            raise RegistryFileError(f"{path}: missing columns {', '.join(missing)}")
        if ("level_empty" in present) != ("level_full" in present):
            raise RegistryFileError(f"{path}: level_empty and level_full come together")
        devices: dict[str, Device] = {}
        suppliers: dict[str, SupplierRow] = {}
        for line, row in enumerate(reader, start=2):
            device = _device(row, known, where=f"{path}:{line}")
            if device.dev_eui in devices:
                raise RegistryFileError(f"{path}:{line}: dev_eui {device.dev_eui} listed twice")
            devices[device.dev_eui] = device
            slug = device.supplier
            suppliers.setdefault(
                slug,
                SupplierRow(
                    slug=slug,
                    name=(row.get("supplier_name") or slug).strip(),
                    kind=(row.get("supplier_kind") or "other").strip(),
                ),
            )
    keep = frozenset(a for a, cols in _KEPT_WITHOUT.items() if not present.issuperset(cols))
    return RegistryFile(
        devices=tuple(devices.values()), suppliers=tuple(suppliers.values()), keep=keep
    )


def _device(row: Mapping[str, str | None], known: set[str], *, where: str) -> Device:
    def field(name: str) -> str:
        return (row.get(name) or "").strip()

    dev_eui = field("dev_eui")
    if not _HEX16.match(dev_eui):
        raise RegistryFileError(f"{where}: dev_eui {dev_eui!r} is not 16 hex digits")
    try:
        city = City(field("city"))
    except ValueError:
        cities = ", ".join(c.value for c in City)
        raise RegistryFileError(f"{where}: city {field('city')!r} is not one of {cities}") from None
    profile = field("profile")
    if profile not in known:
        raise RegistryFileError(f"{where}: profile {profile!r} is not in the device catalog")
    supplier = field("supplier")
    if not SLUG.fullmatch(supplier):
        raise RegistryFileError(f"{where}: supplier {supplier!r} must be a lower-case slug")
    dataset = field("dataset") or None
    if dataset is not None and not SLUG.fullmatch(dataset):
        raise RegistryFileError(f"{where}: dataset {dataset!r} must be a lower-case slug")
    location = None
    if field("latitude") or field("longitude"):
        try:
            location = Location(float(field("latitude")), float(field("longitude")))
        except ValueError:
            raise RegistryFileError(f"{where}: latitude/longitude must be numbers") from None
        if not (-90 <= location.latitude <= 90 and -180 <= location.longitude <= 180):
            raise RegistryFileError(f"{where}: location out of range")
    placement = None
    if field("placement"):
        try:
            placement = Placement(field("placement"))
        except ValueError:
            kinds = ", ".join(p.value for p in Placement)
            raise RegistryFileError(
                f"{where}: placement {field('placement')!r} is not one of {kinds}"
            ) from None
    area = field("area") or None
    if area is not None and (len(area) > MAX_AREA_LENGTH or not area.isprintable()):
        raise RegistryFileError(
            f"{where}: area must be printable text of at most {MAX_AREA_LENGTH} characters"
        )
    return Device(
        dev_eui=dev_eui.upper(),
        name=field("name") or dev_eui.upper(),
        city=city,
        supplier=supplier,
        profile=profile,
        location=location,
        dataset=dataset,
        placement=placement,
        area=area,
        level=_level(field("level_empty"), field("level_full"), where=where),
    )


def _level(empty: str, full: str, *, where: str) -> LevelCalibration | None:
    """Read a level sensor's calibration: both readings or neither, and not equal."""
    if not empty and not full:
        return None
    try:
        level = LevelCalibration(empty=float(empty), full=float(full))
    except ValueError:
        raise RegistryFileError(
            f"{where}: level_empty and level_full must both be numbers (or both empty)"
        ) from None
    if not (math.isfinite(level.empty) and math.isfinite(level.full)):
        raise RegistryFileError(f"{where}: level_empty and level_full must be finite numbers")
    if level.empty == level.full:
        raise RegistryFileError(f"{where}: level_empty and level_full must differ")
    return level
