"""The device registry file: which profile decodes each device, whose it is, and where.

An import changes only what it is told. Each attribute of a device comes from its columns
(ATTRIBUTES); a column the file leaves out, or a cell left empty, says nothing, and the
registered device keeps what it has (`merge`, the one place that rule lives: a new column
gets it by its entry in ATTRIBUTES). A new device needs its city, supplier and profile;
its name defaults to its DevEUI. A supplier's name and kind (`supplier_name`,
`supplier_kind`) set a new supplier's; changing a registered supplier's needs
`--change-suppliers`, since one line would change it for every device of the supplier.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg

from datahub import audit
from datahub.domain import SLUG, City, Device, LevelCalibration, Location, Placement
from datahub.errors import DatahubError
from datahub.privacy import PrivacyClass
from datahub.storage import devices, suppliers
from datahub.storage.suppliers import SupplierRow

_HEX16 = re.compile(r"^[0-9A-Fa-f]{16}$")
MAX_AREA_LENGTH = 100
NEW_DEVICE_NEEDS = ("city", "supplier", "profile")


class RegistryFileError(DatahubError):
    """A registry file that cannot be imported; the message names the line."""


Cells = Mapping[str, str]  # column -> stripped cell of one line


@dataclass(frozen=True, slots=True)
class Attribute:
    """A device attribute, the columns it is read from and how."""

    name: str  # a field of domain.Device
    columns: tuple[str, ...]  # all present or none
    parse: Callable[[Cells, str, frozenset[str]], Any]  # (cells, where, profiles) -> value


def _name(cells: Cells, where: str, profiles: frozenset[str]) -> str:
    return cells["name"]


def _city(cells: Cells, where: str, profiles: frozenset[str]) -> City:
    try:
        return City(cells["city"])
    except ValueError:
        cities = ", ".join(c.value for c in City)
        raise RegistryFileError(f"{where}: city {cells['city']!r} is not one of {cities}") from None


def _slug(column: str) -> Callable[[Cells, str, frozenset[str]], str]:
    def parse(cells: Cells, where: str, profiles: frozenset[str]) -> str:
        if not SLUG.fullmatch(cells[column]):
            raise RegistryFileError(
                f"{where}: {column} {cells[column]!r} must be a lower-case slug"
            )
        return cells[column]

    return parse


def _profile(cells: Cells, where: str, profiles: frozenset[str]) -> str:
    if cells["profile"] not in profiles:
        raise RegistryFileError(
            f"{where}: profile {cells['profile']!r} is not in the device catalog"
        )
    return cells["profile"]


def _location(cells: Cells, where: str, profiles: frozenset[str]) -> Location:
    try:
        location = Location(float(cells["latitude"]), float(cells["longitude"]))
    except ValueError:
        raise RegistryFileError(f"{where}: latitude/longitude must both be numbers") from None
    if not (-90 <= location.latitude <= 90 and -180 <= location.longitude <= 180):
        raise RegistryFileError(f"{where}: location out of range")
    return location


def _one_of(kind: type[StrEnum], column: str) -> Callable[[Cells, str, frozenset[str]], Any]:
    """Read a value of a closed set (placement, privacy class)."""

    def parse(cells: Cells, where: str, profiles: frozenset[str]) -> StrEnum:
        try:
            return kind(cells[column])
        except ValueError:
            known = ", ".join(member.value for member in kind)
            raise RegistryFileError(
                f"{where}: {column} {cells[column]!r} is not one of {known}"
            ) from None

    return parse


def _area(cells: Cells, where: str, profiles: frozenset[str]) -> str:
    area = cells["area"]
    if len(area) > MAX_AREA_LENGTH or not area.isprintable():
        raise RegistryFileError(
            f"{where}: area must be printable text of at most {MAX_AREA_LENGTH} characters"
        )
    return area


def _level(cells: Cells, where: str, profiles: frozenset[str]) -> LevelCalibration:
    """Read a level sensor's calibration: both readings, finite and not equal."""
    try:
        level = LevelCalibration(empty=float(cells["level_empty"]), full=float(cells["level_full"]))
    except ValueError:
        raise RegistryFileError(
            f"{where}: level_empty and level_full must both be numbers (or both empty)"
        ) from None
    if not (math.isfinite(level.empty) and math.isfinite(level.full)):
        raise RegistryFileError(f"{where}: level_empty and level_full must be finite numbers")
    if level.empty == level.full:
        raise RegistryFileError(f"{where}: level_empty and level_full must differ")
    return level


ATTRIBUTES = (
    Attribute("name", ("name",), _name),
    Attribute("city", ("city",), _city),
    Attribute("supplier", ("supplier",), _slug("supplier")),
    Attribute("profile", ("profile",), _profile),
    Attribute("dataset", ("dataset",), _slug("dataset")),
    Attribute("location", ("latitude", "longitude"), _location),
    Attribute("placement", ("placement",), _one_of(Placement, "placement")),
    Attribute("area", ("area",), _area),
    Attribute("level", ("level_empty", "level_full"), _level),
    Attribute("privacy", ("privacy",), _one_of(PrivacyClass, "privacy")),
)
SUPPLIER_COLUMNS = {"supplier_name": "name", "supplier_kind": "kind"}
COLUMNS = ("dev_eui", *(c for a in ATTRIBUTES for c in a.columns), *SUPPLIER_COLUMNS)


@dataclass(frozen=True, slots=True)
class RegistryLine:
    """What one line says: its device's attributes and its supplier's, by name."""

    where: str  # file:line
    dev_eui: str
    stated: Mapping[str, Any]
    supplier: Mapping[str, str]  # name, kind: as the line states them


@dataclass(frozen=True)
class RegistryFile:
    path: Path
    lines: tuple[RegistryLine, ...]


def read_registry_csv(path: Path, *, profiles: Iterable[str]) -> RegistryFile:
    """Read and validate a registry CSV; every error names its line."""
    known = frozenset(profiles)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        present = {c.strip() for c in reader.fieldnames or ()}
        if "dev_eui" not in present:
            raise RegistryFileError(f"{path}: no dev_eui column")
        unknown = sorted(present - set(COLUMNS))
        if unknown:
            raise RegistryFileError(
                f"{path}: unknown columns {', '.join(unknown)}; "
                f"the columns are {', '.join(COLUMNS)}"
            )
        for attribute in ATTRIBUTES:
            if 0 < len(present & set(attribute.columns)) < len(attribute.columns):
                raise RegistryFileError(f"{path}: {' and '.join(attribute.columns)} come together")
        lines: dict[str, RegistryLine] = {}
        for number, row in enumerate(reader, start=2):
            where = f"{path}:{number}"
            cells = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            line = _line(cells, where=where, profiles=known)
            if line.dev_eui in lines:
                raise RegistryFileError(f"{where}: dev_eui {line.dev_eui} listed twice")
            lines[line.dev_eui] = line
    return RegistryFile(path=path, lines=tuple(lines.values()))


def _line(cells: Cells, *, where: str, profiles: frozenset[str]) -> RegistryLine:
    dev_eui = cells["dev_eui"]
    if not _HEX16.match(dev_eui):
        raise RegistryFileError(f"{where}: dev_eui {dev_eui!r} is not 16 hex digits")
    stated: dict[str, Any] = {}
    for attribute in ATTRIBUTES:
        given = [cells.get(c, "") for c in attribute.columns]
        if any(given):  # left out or all empty: the line says nothing of it
            stated[attribute.name] = attribute.parse(cells, where, profiles)
    supplier = {field: cells[c] for c, field in SUPPLIER_COLUMNS.items() if cells.get(c)}
    return RegistryLine(where, dev_eui.upper(), stated, supplier)


# Planning: what an import would change -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceChange:
    """A device an import adds (`before` None) or changes."""

    before: Device | None
    after: Device

    def diff(self) -> dict[str, tuple[Any, Any]]:
        """Return field -> (before, after) of the fields that change (all for a new one)."""
        changed = {}
        for f in dataclasses.fields(Device):
            old = getattr(self.before, f.name) if self.before is not None else None
            new = getattr(self.after, f.name)
            if self.before is None or old != new:
                changed[f.name] = (old, new)
        return changed


@dataclass(frozen=True, slots=True)
class SupplierChange:
    """A supplier an import adds (`before` None) or renames or gives another kind."""

    before: SupplierRow | None
    after: SupplierRow


@dataclass(frozen=True)
class ImportPlan:
    devices: tuple[DeviceChange, ...]  # new and changed devices, in file order
    suppliers: tuple[SupplierChange, ...]
    unchanged: int

    @property
    def added(self) -> int:
        return sum(c.before is None for c in self.devices)

    @property
    def updated(self) -> int:
        return sum(c.before is not None for c in self.devices)

    @property
    def supplier_changes(self) -> tuple[SupplierChange, ...]:
        """Changes of registered suppliers (not new ones), which need an explicit flag."""
        return tuple(c for c in self.suppliers if c.before is not None)


def merge(line: RegistryLine, stored: Device | None) -> Device:
    """Return the device after the line: what it states over what is stored."""
    if stored is None:
        missing = [a for a in NEW_DEVICE_NEEDS if a not in line.stated]
        if missing:
            raise RegistryFileError(
                f"{line.where}: device {line.dev_eui} is not registered, so the line needs "
                f"its {', '.join(missing)}"
            )
        fields = {"name": line.dev_eui, **line.stated}
        fields.setdefault("dataset", fields["supplier"])
        return Device(dev_eui=line.dev_eui, **fields)
    merged = dataclasses.replace(stored, **line.stated)
    if merged.supplier != stored.supplier and "dataset" not in line.stated:
        # A device that changes hands goes into its new supplier's own dataset.
        merged = dataclasses.replace(merged, dataset=merged.supplier)
    return merged


def plan_import(
    file: RegistryFile,
    *,
    stored_devices: Mapping[str, Device],
    stored_suppliers: Mapping[str, SupplierRow],
) -> ImportPlan:
    """Work out what importing `file` would change (pure)."""
    changes: list[DeviceChange] = []
    unchanged = 0
    named: dict[str, tuple[str, Mapping[str, str]]] = {}  # supplier -> (where, name/kind)
    for line in file.lines:
        before = stored_devices.get(line.dev_eui)
        after = merge(line, before)
        if after == before:
            unchanged += 1
        else:
            changes.append(DeviceChange(before, after))
        if line.supplier:
            seen = named.setdefault(after.supplier, (line.where, line.supplier))
            if any(seen[1].get(k, v) != v for k, v in line.supplier.items()):
                raise RegistryFileError(
                    f"{line.where}: supplier {after.supplier} is named differently on {seen[0]}"
                )
    slugs = dict.fromkeys(c.after.supplier for c in changes) | dict.fromkeys(named)
    supplier_changes: list[SupplierChange] = []
    for slug in slugs:
        stated = named.get(slug, ("", {}))[1]
        current = stored_suppliers.get(slug)
        if current is None:
            new = SupplierRow(slug, stated.get("name", slug), stated.get("kind", "other"))
            supplier_changes.append(SupplierChange(None, new))
            continue
        wanted = dataclasses.replace(current, **stated)
        if wanted != current:
            supplier_changes.append(SupplierChange(current, wanted))
    return ImportPlan(tuple(changes), tuple(supplier_changes), unchanged)


# Applying ---------------------------------------------------------------------------------


def plan(conn: psycopg.Connection, file: RegistryFile) -> ImportPlan:
    """Work out what importing `file` would change against the registry now."""
    dev_euis = [line.dev_eui for line in file.lines]
    stored = devices.select_devices(conn, dev_euis=dev_euis)
    slugs = {line.stated["supplier"] for line in file.lines if "supplier" in line.stated}
    slugs |= {d.supplier for d in stored.values()}
    return plan_import(
        file,
        stored_devices=stored,
        stored_suppliers=suppliers.select_suppliers(conn, slugs=sorted(slugs)),
    )


def apply(
    conn: psycopg.Connection,
    file: RegistryFile,
    *,
    actor: str,
    change_suppliers: bool = False,
) -> ImportPlan:
    """Import `file` in the caller's transaction, with one audit entry; return what changed.

    RegistryFileError if it would rename a registered supplier or change its kind without
    `change_suppliers`, or name a dataset that is not its device's supplier's.
    """
    found = plan(conn, file)
    if found.supplier_changes and not change_suppliers:
        raise RegistryFileError(
            f"{file.path}: the import would change registered suppliers ("
            + "; ".join(describe_supplier(c) for c in found.supplier_changes)
            + "); give --change-suppliers to change them, or leave supplier_name and "
            "supplier_kind empty to keep them"
        )
    if not found.devices and not found.suppliers:
        return found
    for change in found.suppliers:
        if change.before is None:
            suppliers.insert_supplier(conn, supplier=change.after)
        else:
            suppliers.update_supplier(conn, supplier=change.after)
    slugs = sorted({c.after.supplier for c in found.devices})
    try:
        devices.upsert_devices(
            conn,
            devices=[c.after for c in found.devices],
            supplier_ids=suppliers.select_supplier_ids(conn, slugs=slugs),
        )
    except ValueError as exc:
        raise RegistryFileError(f"{file.path}: {exc}") from None
    audit.record(
        conn,
        actor=actor,
        action="registry.import",
        target=f"registry:{file.path.name}",
        before={
            "devices": {c.after.dev_eui: c.before for c in found.devices},
            "suppliers": {c.after.slug: c.before for c in found.suppliers},
        },
        after={
            "devices": {c.after.dev_eui: c.after for c in found.devices},
            "suppliers": {c.after.slug: c.after for c in found.suppliers},
        },
    )
    return found


def describe_supplier(change: SupplierChange) -> str:
    """Describe a supplier change in one line."""
    if change.before is None:
        return f"supplier {change.after.slug} added: {change.after.name!r}, {change.after.kind}"
    parts = [
        f"{name} {getattr(change.before, name)!r} -> {getattr(change.after, name)!r}"
        for name in ("name", "kind")
        if getattr(change.before, name) != getattr(change.after, name)
    ]
    return f"supplier {change.after.slug}: {', '.join(parts)}"


def describe_device(change: DeviceChange) -> str:
    """Describe a device change in one line: `+` new, `~` changed, with its fields."""
    if change.before is None:
        fields = ", ".join(
            f"{k}={_shown(v)}" for k, (_, v) in change.diff().items() if v is not None
        )
        return f"+ {change.after.dev_eui}: {fields}"
    fields = "; ".join(
        f"{k}: {_shown(old)} -> {_shown(new)}" for k, (old, new) in change.diff().items()
    )
    return f"~ {change.after.dev_eui}: {fields}"


def _shown(value: Any) -> str:
    plain = audit.jsonable(value)
    if isinstance(plain, dict):
        return "(" + ", ".join(f"{k}={v}" for k, v in plain.items()) + ")"
    return repr(plain) if isinstance(plain, str) else str(plain)
