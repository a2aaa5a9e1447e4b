"""The device registry file: which profile decodes each device, whose it is, and where."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from datahub.domain import SLUG, City, Device, Location
from datahub.errors import DatahubError
from datahub.storage.suppliers import SupplierRow

COLUMNS = ("dev_eui", "name", "city", "supplier", "profile")
OPTIONAL = ("supplier_name", "supplier_kind", "dataset", "latitude", "longitude")
_HEX16 = re.compile(r"^[0-9A-Fa-f]{16}$")


class RegistryFileError(DatahubError):
    """A registry file that cannot be imported; the message names the line."""


@dataclass(frozen=True)
class RegistryFile:
    devices: tuple[Device, ...]
    suppliers: tuple[SupplierRow, ...]


def read_registry_csv(path: Path, *, profiles: Iterable[str]) -> RegistryFile:
    """Read and validate a registry CSV; every error names its line."""
    known = set(profiles)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise RegistryFileError(f"{path}: missing columns {', '.join(missing)}")
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
    return RegistryFile(devices=tuple(devices.values()), suppliers=tuple(suppliers.values()))


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
    return Device(
        dev_eui=dev_eui.upper(),
        name=field("name") or dev_eui.upper(),
        city=city,
        supplier=supplier,
        profile=profile,
        location=location,
        dataset=dataset,
    )
