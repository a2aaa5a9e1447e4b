"""Scenarios: which simulated devices exist, where they are, whose they are and what they report.

A scenario is a YAML file (see scenarios/demo.yaml) with five sections:

    name, timezone      a label and the zone the daily cycles follow (Europe/Berlin)
    cities              center and radius of every city the fleets live in
    sources             the network-server feeds (names as in datahub's `sources` settings),
                        each serving one city through one to three gateways
    suppliers           who owns the devices: slug, name, kind
    fleets              devices of one profile, city, supplier and source; `values` says how
                        every field of the profile's decoded object behaves: `kind` cycle
                        (the default), counter, increment, state, fill or constant (the
                        *Spec models below)

`load_scenario` validates all of it, including that each fleet's profile has an encoder and
that its `values` name exactly the encoder's fields. `Scenario.devices()` expands the fleets
into `SimDevice`s; their dev_euis and locations depend on the scenario only, never on a seed,
so the device registry written by `write_registry_csv` is the same for every run.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import IO, Annotated, Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from datahub.domain import City, Device, LevelCalibration, Location, Placement
from datahub.errors import ConfigError

DEFAULT_SCENARIO = Path(__file__).parent / "scenarios" / "demo.yaml"

REGISTRY_COLUMNS = (
    "dev_eui",
    "name",
    "city",
    "supplier",
    "supplier_name",
    "supplier_kind",
    "profile",
    "latitude",
    "longitude",
    "placement",
    "area",
    "level_empty",
    "level_full",
)

EARTH_RADIUS_M = 6_371_008.8

FieldPath = tuple[str, ...]


class ScenarioError(ConfigError):
    """The scenario cannot be loaded or does not fit the encoders."""


class EncoderLike(Protocol):
    """What the scenario needs to know of an encoder: the paths of its decoded fields."""

    @property
    def fields(self) -> tuple[FieldPath, ...]: ...


def field_path(name: str) -> FieldPath:
    """Split a field name ("battery/voltage") into a path into the decoded object.

    The separator is "/" because decoded keys may hold dots ("pm2.5").
    """
    return tuple(name.split("/"))


def field_name(path: FieldPath) -> str:
    """Join a path into the decoded object back into its field name."""
    return "/".join(path)


class SupplierKind(StrEnum):
    CITY_DEPARTMENT = "city_department"
    UTILITY = "utility"
    WASTE_COMPANY = "waste_company"
    UNIVERSITY = "university"
    SCHOOL = "school"
    COMPANY = "company"
    CITIZEN_SCIENCE = "citizen_science"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_SLUG = r"^[a-z0-9](?:-?[a-z0-9])*$"
_HEX = r"^[0-9A-F]*$"


class CitySpec(_Model):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    radius_km: float = Field(gt=0, le=50)
    altitude: float = Field(default=0.0, description="ground level in meters, for device locations")


class GatewaySpec(_Model):
    """A gateway of a network server; `id` is the TTN gateway id, `eui` the ChirpStack id."""

    id: Annotated[str, Field(pattern=_SLUG, max_length=36)]
    eui: Annotated[str, Field(pattern=r"^[0-9A-F]{16}$")]
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    altitude: float = 0.0

    @field_validator("eui", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class SourceSpec(_Model):
    """A network-server feed; `name` must match a source in datahub's settings."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]
    city: City
    tenant: str = Field(
        default="ttn", min_length=1, description="TTN tenant id (topic suffix) or ChirpStack tenant"
    )
    gateways: tuple[GatewaySpec, ...] = Field(min_length=1, max_length=3)


class SupplierSpec(_Model):
    slug: Annotated[str, Field(pattern=_SLUG, max_length=63)]
    name: str = Field(min_length=1)
    kind: SupplierKind


class CycleSpec(_Model):
    """A measured quantity: mean + daily (and yearly) sinusoid + drift + Gaussian noise, clamped.

    The daily sinusoid peaks at `peak_hour` local time; on weekends its amplitude is scaled by
    `weekend_factor` and the mean is `weekend_mean` if given (an empty school). `spread` is the
    standard deviation of a fixed per-device offset, so a fleet's devices do not all read the
    same.
    """

    kind: Literal["cycle"] = "cycle"
    mean: float
    daily_amplitude: float = 0.0
    peak_hour: float = Field(default=14.0, ge=0, lt=24)
    weekend_factor: float = Field(default=1.0, ge=0)
    weekend_mean: float | None = None
    annual_amplitude: float = 0.0
    peak_day: int = Field(default=200, ge=1, le=366, description="day of year of the annual peak")
    drift_per_day: float = 0.0
    spread: float = Field(default=0.0, ge=0)
    noise: float = Field(default=0.0, ge=0, description="standard deviation per reading")
    min: float
    max: float

    @model_validator(mode="after")
    def _bounds(self) -> CycleSpec:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class CounterSpec(_Model):
    """A cumulative counter that only grows: Poisson increments at `rate_per_hour`.

    The rate follows a daily cycle (`daily_amplitude` is relative, 0..1, peaking at `peak_hour`)
    and is scaled by `weekend_factor` on weekends. A device starts at a value drawn from
    `initial` (inclusive range).
    """

    kind: Literal["counter"]
    rate_per_hour: float = Field(ge=0)
    daily_amplitude: float = Field(default=0.0, ge=0, le=1)
    peak_hour: float = Field(default=12.0, ge=0, lt=24)
    weekend_factor: float = Field(default=1.0, ge=0)
    initial: tuple[int, int] = (0, 0)
    max: int | None = Field(default=None, description="largest value the counter may reach")

    @model_validator(mode="after")
    def _bounds(self) -> CounterSpec:
        low, high = self.initial
        if not 0 <= low <= high:
            raise ValueError(
                f"initial must be a range [low, high] with 0 <= low <= high, not {low, high}"
            )
        if self.max is not None and high > self.max:
            raise ValueError(f"initial {high} is above max {self.max}")
        return self


class StateSpec(_Model):
    """A two-valued state (occupied, open, alarm): `on` with `probability`, else `off`.

    `probability` is one number or 24 numbers, one per local hour.
    """

    kind: Literal["state"]
    probability: float | tuple[float, ...]
    on: float = 1
    off: float = 0

    @field_validator("probability")
    @classmethod
    def _probabilities(cls, value: float | tuple[float, ...]) -> float | tuple[float, ...]:
        values = value if isinstance(value, tuple) else (value,)
        if isinstance(value, tuple) and len(value) != 24:
            raise ValueError(f"probability needs one number or 24 (one per hour), not {len(value)}")
        if any(not 0 <= p <= 1 for p in values):
            raise ValueError("probabilities must lie in [0, 1]")
        return value

    def probability_at(self, hour: int) -> float:
        return self.probability[hour] if isinstance(self.probability, tuple) else self.probability


class FillSpec(_Model):
    """A level that fills up and is emptied (a waste bin): from `empty` to `full`, then reset.

    It takes about `hours_to_full` (varied per device by `jitter`, a fraction) to go from
    `empty` to `full`, faster at `peak_hour` when `daily_amplitude` > 0; a device starts at a
    random level. `empty` may exceed `full`: an ultrasonic sensor's distance to the waste
    shrinks as the bin fills.
    """

    kind: Literal["fill"]
    empty: float
    full: float
    hours_to_full: float = Field(gt=0)
    jitter: float = Field(default=0.0, ge=0, lt=1)
    daily_amplitude: float = Field(default=0.0, ge=0, le=1)
    peak_hour: float = Field(default=12.0, ge=0, lt=24)
    noise: float = Field(default=0.0, ge=0)

    @property
    def min(self) -> float:
        return min(self.empty, self.full)

    @property
    def max(self) -> float:
        return max(self.empty, self.full)


class IncrementSpec(_Model):
    """What a counter field of the same device grew by since the previous uplink."""

    kind: Literal["increment"]
    of: str = Field(description="the counter field")


class ConstantSpec(_Model):
    """A field that always reports the same value (a configuration flag, a firmware setting)."""

    kind: Literal["constant"]
    value: float


def _value_kind(data: Any) -> str:
    if isinstance(data, Mapping):
        return str(data.get("kind", "cycle"))
    return str(getattr(data, "kind", "cycle"))


ValueSpec = Annotated[
    Annotated[CycleSpec, Tag("cycle")]
    | Annotated[CounterSpec, Tag("counter")]
    | Annotated[StateSpec, Tag("state")]
    | Annotated[FillSpec, Tag("fill")]
    | Annotated[IncrementSpec, Tag("increment")]
    | Annotated[ConstantSpec, Tag("constant")],
    Discriminator(_value_kind),
]


class FleetSpec(_Model):
    """Devices of one profile, city, supplier and network source."""

    name: Annotated[str, Field(pattern=_SLUG, max_length=32)]
    city: City
    profile: Annotated[str, Field(pattern=r"^[a-z0-9-]+/[a-z0-9-]+$")]
    count: int = Field(ge=1, le=100_000)
    supplier: str
    dev_eui_prefix: Annotated[str, Field(pattern=r"^[0-9A-F]{4,14}$")]
    interval_s: int = Field(ge=10, le=7 * 86_400, description="reporting interval")
    source: str
    application: Annotated[str | None, Field(pattern=_SLUG, max_length=36)] = Field(
        default=None, description="network-server application; default: the fleet name"
    )
    join_eui: Annotated[str, Field(pattern=r"^[0-9A-F]{16}$")] = "0000000000000000"
    radius_km: float | None = Field(
        default=None, gt=0, description="place devices this close to the city center"
    )
    placement: Placement | None = Field(default=None, description="indoor or outdoor air")
    areas: dict[str, int] | None = Field(
        default=None,
        description="district or zone -> how many of the fleet's devices lie in it, in order",
    )
    values: dict[str, ValueSpec]

    @field_validator("dev_eui_prefix", "join_eui", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _fits(self) -> FleetSpec:
        digits = 16 - len(self.dev_eui_prefix)
        if self.count > 16**digits - 1:
            raise ValueError(
                f"{self.count} devices do not fit behind dev_eui prefix {self.dev_eui_prefix}"
            )
        for name, spec in self.values.items():
            if isinstance(spec, IncrementSpec) and not isinstance(
                self.values.get(spec.of), CounterSpec
            ):
                raise ValueError(f"values.{name}: `of` must name a counter field, not {spec.of!r}")
        if self.areas is not None and sum(self.areas.values()) != self.count:
            raise ValueError(
                f"areas hold {sum(self.areas.values())} devices, the fleet {self.count}"
            )
        if len([v for v in self.values.values() if isinstance(v, FillSpec)]) > 1:
            raise ValueError("a fleet's devices have one level: at most one `fill` value")
        return self

    def area(self, index: int) -> str | None:
        """The area of the fleet's device number `index` (1-based): `areas` in order."""
        if self.areas is None:
            return None
        for name, count in self.areas.items():
            if index <= count:
                return name
            index -= count
        raise ValueError(f"no area for device {index}")

    @property
    def level(self) -> LevelCalibration | None:
        """What its level sensors read empty and full: the `fill` value's ends, if any."""
        fill = next((v for v in self.values.values() if isinstance(v, FillSpec)), None)
        return LevelCalibration(empty=fill.empty, full=fill.full) if fill else None

    @property
    def application_id(self) -> str:
        return self.application or self.name

    def dev_eui(self, index: int) -> str:
        """The dev_eui of the fleet's device number `index` (1-based): prefix + index in hex."""
        return f"{self.dev_eui_prefix}{index:0{16 - len(self.dev_eui_prefix)}X}"


@dataclass(frozen=True, slots=True)
class SimDevice:
    """One simulated device, with everything the generator and the envelopes need."""

    dev_eui: str
    name: str
    city: City
    supplier: str
    profile: str
    latitude: float
    longitude: float
    altitude: float
    fleet: str
    source: str
    tenant: str
    application: str
    join_eui: str
    interval_s: int
    placement: Placement | None = None
    area: str | None = None
    level: LevelCalibration | None = None

    @property
    def device_id(self) -> str:
        """The TTN device id (lower-case slug)."""
        return self.name

    def to_device(self) -> Device:
        """The registry entry the hub should hold for this device."""
        return Device(
            dev_eui=self.dev_eui,
            name=self.name,
            city=self.city,
            supplier=self.supplier,
            profile=self.profile,
            location=Location(latitude=self.latitude, longitude=self.longitude),
            placement=self.placement,
            area=self.area,
            level=self.level,
        )


class Scenario(_Model):
    """A validated scenario; build it with `load_scenario` or `parse_scenario`."""

    name: str = "scenario"
    timezone: str = "Europe/Berlin"
    cities: dict[City, CitySpec]
    sources: tuple[SourceSpec, ...] = Field(min_length=1)
    suppliers: tuple[SupplierSpec, ...] = Field(min_length=1)
    fleets: tuple[FleetSpec, ...] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        _unique("source", [s.name for s in self.sources])
        _unique("supplier", [s.slug for s in self.suppliers])
        _unique("fleet", [f.name for f in self.fleets])
        _unique("gateway id", [g.id for s in self.sources for g in s.gateways])
        sources = {s.name: s for s in self.sources}
        suppliers = {s.slug for s in self.suppliers}
        for fleet in self.fleets:
            where = f"fleet {fleet.name!r}"
            if fleet.city not in self.cities:
                raise ValueError(f"{where}: city {fleet.city.value!r} is not in `cities`")
            if fleet.supplier not in suppliers:
                raise ValueError(f"{where}: supplier {fleet.supplier!r} is not in `suppliers`")
            source = sources.get(fleet.source)
            if source is None:
                raise ValueError(f"{where}: source {fleet.source!r} is not in `sources`")
            if source.city != fleet.city:
                raise ValueError(
                    f"{where}: source {source.name!r} serves {source.city.value}, "
                    f"not {fleet.city.value}"
                )
            radius = self.cities[fleet.city].radius_km
            if fleet.radius_km is not None and fleet.radius_km > radius:
                raise ValueError(
                    f"{where}: radius_km {fleet.radius_km} exceeds the city's {radius}"
                )
        _unique("dev_eui", [f.dev_eui(i) for f in self.fleets for i in range(1, f.count + 1)])
        return self

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def source(self, name: str) -> SourceSpec:
        return next(s for s in self.sources if s.name == name)

    def supplier(self, slug: str) -> SupplierSpec:
        return next(s for s in self.suppliers if s.slug == slug)

    def fleet(self, name: str) -> FleetSpec:
        return next(f for f in self.fleets if f.name == name)

    @property
    def source_names(self) -> frozenset[str]:
        """The sources the fleets publish to; each needs a publish target."""
        return frozenset(f.source for f in self.fleets)

    def devices(self) -> list[SimDevice]:
        """Expand the fleets into their devices, fleet by fleet, in index order."""
        return list(self._devices)

    @cached_property
    def _devices(self) -> tuple[SimDevice, ...]:
        out: list[SimDevice] = []
        for fleet in self.fleets:
            city = self.cities[fleet.city]
            radius_m = (fleet.radius_km or city.radius_km) * 1000
            tenant = self.source(fleet.source).tenant
            for index in range(1, fleet.count + 1):
                dev_eui = fleet.dev_eui(index)
                latitude, longitude = place(dev_eui, city.latitude, city.longitude, radius_m)
                out.append(
                    SimDevice(
                        dev_eui=dev_eui,
                        name=f"{fleet.name}-{index:03d}",
                        city=fleet.city,
                        supplier=fleet.supplier,
                        profile=fleet.profile,
                        latitude=latitude,
                        longitude=longitude,
                        altitude=city.altitude,
                        fleet=fleet.name,
                        source=fleet.source,
                        tenant=tenant,
                        application=fleet.application_id,
                        join_eui=fleet.join_eui,
                        interval_s=fleet.interval_s,
                        placement=fleet.placement,
                        area=fleet.area(index),
                        level=fleet.level,
                    )
                )
        return tuple(out)


def _unique(what: str, values: Iterable[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} appears twice")
        seen.add(value)


def place(dev_eui: str, latitude: float, longitude: float, radius_m: float) -> tuple[float, float]:
    """A location uniformly spread over the disc around a center, fixed by the dev_eui alone."""
    digest = hashlib.sha256(f"location/{dev_eui}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    v = int.from_bytes(digest[8:16], "big") / 2**64
    # sqrt(u) spreads points evenly over the area; 0.99 keeps rounding inside the circle.
    distance = 0.99 * radius_m * math.sqrt(u)
    bearing = 2 * math.pi * v
    north, east = distance * math.cos(bearing), distance * math.sin(bearing)
    lat = latitude + math.degrees(north / EARTH_RADIUS_M)
    lon = longitude + math.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(latitude))))
    return round(lat, 6), round(lon, 6)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in meters (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def _default_encoders() -> Mapping[str, EncoderLike]:
    from simulators.encoders import ENCODERS

    return ENCODERS


def check_encoders(scenario: Scenario, encoders: Mapping[str, EncoderLike]) -> None:
    """Fail unless every fleet's profile has an encoder and its values name exactly its fields."""
    for fleet in scenario.fleets:
        where = f"fleet {fleet.name!r}"
        encoder = encoders.get(fleet.profile)
        if encoder is None:
            known = ", ".join(sorted(encoders)) or "none"
            raise ScenarioError(
                f"{where}: no encoder for profile {fleet.profile!r} (encoders exist for: {known})"
            )
        wanted = {field_name(path) for path in encoder.fields}
        given = set(fleet.values)
        if missing := sorted(wanted - given):
            raise ScenarioError(
                f"{where}: `values` lacks {', '.join(missing)} of profile {fleet.profile!r}"
            )
        if extra := sorted(given - wanted):
            raise ScenarioError(
                f"{where}: profile {fleet.profile!r} has no field {', '.join(extra)} "
                f"(its fields: {', '.join(sorted(wanted))})"
            )


def parse_scenario(
    data: Any, *, encoders: Mapping[str, EncoderLike] | None = None, origin: str = "scenario"
) -> Scenario:
    """Validate a scenario given as plain data (the parsed YAML) against the encoders."""
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{origin}: expected a mapping at the top, not {type(data).__name__}")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ScenarioError(f"{origin} is invalid:\n{problems}") from exc
    try:
        check_encoders(scenario, _default_encoders() if encoders is None else encoders)
    except ScenarioError as exc:
        raise ScenarioError(f"{origin}: {exc}") from exc
    return scenario


def load_scenario(
    path: Path | str = DEFAULT_SCENARIO, *, encoders: Mapping[str, EncoderLike] | None = None
) -> Scenario:
    """Read and validate a scenario YAML file; raise ScenarioError saying what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path} is not valid YAML: {exc}") from exc
    return parse_scenario(data, encoders=encoders, origin=str(path))


def registry_rows(scenario: Scenario) -> list[dict[str, str]]:
    """One row per device, columns REGISTRY_COLUMNS, as `datahub devices import` reads them."""
    rows = []
    for device in scenario.devices():
        supplier = scenario.supplier(device.supplier)
        rows.append(
            {
                "dev_eui": device.dev_eui,
                "name": device.name,
                "city": device.city.value,
                "supplier": supplier.slug,
                "supplier_name": supplier.name,
                "supplier_kind": supplier.kind.value,
                "profile": device.profile,
                "latitude": f"{device.latitude:.6f}",
                "longitude": f"{device.longitude:.6f}",
                "placement": device.placement.value if device.placement else "",
                "area": device.area or "",
                "level_empty": f"{device.level.empty:g}" if device.level else "",
                "level_full": f"{device.level.full:g}" if device.level else "",
            }
        )
    return rows


def write_registry_csv(scenario: Scenario, file: Path | str | IO[str]) -> int:
    """Write the device registry as CSV (header + one row per device); return the row count."""
    rows = registry_rows(scenario)
    if isinstance(file, (str, Path)):
        with Path(file).open("w", encoding="utf-8", newline="") as handle:
            _write_rows(rows, handle)
    else:
        _write_rows(rows, file)
    return len(rows)


def _write_rows(rows: list[dict[str, str]], handle: IO[str]) -> None:
    writer = csv.DictWriter(handle, fieldnames=REGISTRY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
