"""SensorThings entities as JSON, from the rows of storage/sensorthings.py.

A Thing's name and properties are rendered by `thing_identity` alone, and every
coordinate of a Location, HistoricalLocation's Location, FeatureOfInterest or a
Datastream's observed area by `point` alone: a rule about what a caller may learn of a
device (its DevEUI, its exact place) applies in those two places. An Observation's result
is rendered by `Resolution.result` alone, at the resolution the REST API renders it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson

from datahub import observations
from datahub.api.catalog import MetricCatalog
from datahub.api.sensorthings.model import OPTIONAL, PROPERTIES, RELATIONS, EntityType
from datahub.observations import format_time
from datahub.storage.sensorthings import Row

E = EntityType

# The hub's units (SenML/UCUM symbols of decoders/metrics.py) -> (name, UCUM code).
UNITS: dict[str, tuple[str, str]] = {
    "Cel": ("degree Celsius", "Cel"),
    "°C": ("degree Celsius", "Cel"),
    "%RH": ("percent relative humidity", "%"),
    "%": ("percent", "%"),
    "hPa": ("hectopascal", "hPa"),
    "lx": ("lux", "lx"),
    "ppm": ("parts per million", "[ppm]"),
    "ppb": ("parts per billion", "[ppb]"),
    "mg/m3": ("milligram per cubic metre", "mg/m3"),
    "ug/m3": ("microgram per cubic metre", "ug/m3"),
    "1": ("count", "1"),
    "mm": ("millimetre", "mm"),
    "m": ("metre", "m"),
    "V": ("volt", "V"),
}
UCUM = "http://unitsofmeasure.org/ucum.html#"


def unit_of(unit: str) -> tuple[str, str, str]:
    """(name, UCUM symbol, definition URI) of one of the hub's units."""
    name, code = UNITS.get(unit, (unit, unit))
    return name, code, UCUM + quote(code, safe="")


def point(row: Row) -> dict[str, Any] | None:
    """A row's coordinates as a GeoJSON Point (longitude first); None where it has none."""
    if row.get("latitude") is None or row.get("longitude") is None:
        return None
    return {"type": "Point", "coordinates": [row["longitude"], row["latitude"]]}


def thing_identity(row: Row) -> tuple[str, dict[str, Any]]:
    """A Thing's name and properties."""
    return row["name"], {
        "dev_eui": row["dev_eui"],
        "city": row["city"],
        "supplier": row["supplier"],
        "supplier_name": row["supplier_name"],
        "dataset": row["dataset"],
        "profile": row["profile"],
        **licence(row),
    }


def licence(row: Row) -> dict[str, Any]:
    """The licence of the dataset a row belongs to, as a `properties` entry."""
    return {
        "licence": {
            "id": row["licence"],
            "name": row["licence_name"],
            "url": row["licence_url"],
            "attribution": row["attribution"],
        }
    }


@dataclass(frozen=True, slots=True)
class Resolution:
    """Renders results at the resolution their profile's mapping declares, as the REST API
    does (api/catalog.py); the stored values are unchanged."""

    catalog: MetricCatalog
    # (profile, metric) -> its rounder: looked up in the catalog once per series and request
    rounders: dict[tuple[str, str], Callable[[float], float]] = field(default_factory=dict)

    def rounder(self, profile: str, metric: str) -> Callable[[float], float]:
        """Return what renders one series' values."""
        found = self.rounders.get((profile, metric))
        if found is None:
            found = self.rounders[profile, metric] = self.catalog.rounder(profile, metric)
        return found

    def result(self, row: Row) -> float | None:
        """An Observation row's result (`value` of the `profile`'s `metric`)."""
        value: float | None = row["value"]
        if value is None:  # not selected
            return None
        return self.rounder(row["profile"], row["metric"])(value)


@dataclass(frozen=True, slots=True)
class Context:
    """What entities are rendered with besides their rows."""

    base: str  # the service root URL
    resolution: Resolution


def _time(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def _interval(start: datetime | None, end: datetime | None) -> str | None:
    if start is None or end is None:
        return None
    return f"{format_time(start)}/{format_time(end)}"


Render = Callable[[Row, Context], dict[str, Any]]


def _thing(row: Row, context: Context) -> dict[str, Any]:
    name, properties = thing_identity(row)
    return {"name": name, "description": row["description"], "properties": properties}


def _place(geometry: str) -> Render:
    """A Location (its geometry is `location`) or a FeatureOfInterest (`feature`)."""

    def render(row: Row, context: Context) -> dict[str, Any]:
        return {
            "name": row["name"],
            "description": row["description"],
            "encodingType": row["encoding"],
            geometry: point(row),
            "properties": {"since": _time(row["since"])},
        }

    return render


def _historical_location(row: Row, context: Context) -> dict[str, Any]:
    return {"time": _time(row["since"])}


def _datastream(row: Row, context: Context) -> dict[str, Any]:
    name, symbol, definition = unit_of(row["unit"]) if row["unit"] else (None, None, None)
    time = _interval(row["first_time"], row["last_time"])
    series = f"{context.base}/Datastreams({row['id']})/Observations"
    return {
        "name": row["name"],
        "description": row["description"],
        "unitOfMeasurement": {"name": name, "symbol": symbol, "definition": definition},
        "observationType": row["observation_type"],
        "observedArea": point(row),
        "phenomenonTime": time,
        "resultTime": time,
        "properties": {
            "metric": row["metric"],
            "dataset": row["dataset"],
            **licence(row),
            # Beyond the standard: the hub's hourly and daily rollups of this series.
            "aggregates": {
                "hourly": f"{series}?aggregate=1h",
                "daily": f"{series}?aggregate=1d",
            },
        },
    }


def _sensor(row: Row, context: Context) -> dict[str, Any]:
    return {
        "name": row["name"],
        "description": row["description"],
        "encodingType": row["encoding"],
        "metadata": row["metadata"],
        "properties": {"vendor": row["vendor"], "model": row["model"], "version": row["version"]},
    }


def _observed_property(row: Row, context: Context) -> dict[str, Any]:
    return {
        "name": row["name"],
        "definition": row["definition"],
        "description": row["description"],
        "properties": {"unit": row["unit"]},
    }


def _observation(row: Row, context: Context) -> dict[str, Any]:
    body = observations.observation_json(
        context.base,
        datastream=row["datastream_id"],
        time=row["time"],
        value=context.resolution.result(row),
        decoder=row["decoder"],
    )
    return {k: v for k, v in body.items() if not k.startswith("@") and "@" not in k}


RENDER: dict[EntityType, Render] = {
    E.THING: _thing,
    E.LOCATION: _place("location"),
    E.HISTORICAL_LOCATION: _historical_location,
    E.DATASTREAM: _datastream,
    E.SENSOR: _sensor,
    E.OBSERVED_PROPERTY: _observed_property,
    E.OBSERVATION: _observation,
    E.FEATURE_OF_INTEREST: _place("feature"),
}

# The storage columns each property is rendered from; `@iot.id` from `id`.
_ALWAYS = {
    E.OBSERVATION: {"datastream_id", "time", "dataset_id"},
    E.THING: {"dataset_id"},
    E.DATASTREAM: {"dataset_id"},
}
COLUMNS: dict[EntityType, dict[str, set[str]]] = {
    E.THING: {
        "name": {"name"},
        "description": {"description"},
        "properties": {
            "name",
            "dev_eui",
            "city",
            "supplier",
            "supplier_name",
            "dataset",
            "profile",
            "licence",
            "licence_name",
            "licence_url",
            "attribution",
        },
    },
    E.LOCATION: {
        "name": {"name"},
        "description": {"description"},
        "encodingType": {"encoding"},
        "location": {"latitude", "longitude"},
        "properties": {"since"},
    },
    E.HISTORICAL_LOCATION: {"time": {"since"}},
    E.DATASTREAM: {
        "name": {"name"},
        "description": {"description"},
        "unitOfMeasurement": {"unit"},
        "observationType": {"observation_type"},
        "observedArea": {"latitude", "longitude"},
        "phenomenonTime": {"first_time", "last_time"},
        "resultTime": {"first_time", "last_time"},
        "properties": {
            "metric",
            "dataset",
            "licence",
            "licence_name",
            "licence_url",
            "attribution",
        },
    },
    E.SENSOR: {
        "name": {"name"},
        "description": {"description"},
        "encodingType": {"encoding"},
        "metadata": {"metadata"},
        "properties": {"vendor", "model", "version"},
    },
    E.OBSERVED_PROPERTY: {
        "name": {"name"},
        "definition": {"definition"},
        "description": {"description"},
        "properties": {"unit"},
    },
    E.OBSERVATION: {
        "phenomenonTime": {"time"},
        "resultTime": {"time"},
        "result": {"value", "profile", "metric"},
        "parameters": {"decoder"},
    },
    E.FEATURE_OF_INTEREST: {
        "name": {"name"},
        "description": {"description"},
        "encodingType": {"encoding"},
        "feature": {"latitude", "longitude"},
        "properties": {"since"},
    },
}


def columns_for(entity: EntityType, select: Sequence[str]) -> set[str]:
    """The storage columns needed to render `select` (empty: every property)."""
    wanted = [p for p in select if p in PROPERTIES[entity]] if select else list(PROPERTIES[entity])
    needed = {"id"} | _ALWAYS.get(entity, set())
    for name in wanted:
        needed |= COLUMNS[entity].get(name, set())
    if entity is E.DATASTREAM and (not select or "properties" in select):
        needed |= {"metric"}
    return needed


def entity_json(
    entity: EntityType, row: Row, context: Context, select: Sequence[str], self_link: str
) -> dict[str, Any]:
    """One entity: control information, the selected properties and navigation links."""
    # Only the selected properties' columns were read: the others render as None.
    body = RENDER[entity](_Selected(row), context)
    out: dict[str, Any] = {}
    if not select or "@iot.id" in select:
        out["@iot.id"] = row["id"]
    if not select:
        out["@iot.selfLink"] = self_link
    for name in PROPERTIES[entity]:
        if name == "@iot.id" or (select and name not in select):
            continue
        value = body.get(name)
        if value is None and name in OPTIONAL and not select:
            continue
        out[name] = value
    for relation in RELATIONS[entity]:
        if not select or relation in select:
            out[f"{relation}@iot.navigationLink"] = f"{self_link}/{relation}"
    return out


class _Selected(dict[str, Any]):
    def __missing__(self, key: str) -> None:
        return None


def self_link(base: str, entity: EntityType, entity_id: int) -> str:
    return f"{base}/{entity.plural}({entity_id})"


def value_text(value: Any) -> str:
    """A property's raw value for `/$value`: text as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def dataset_ids(entity: EntityType, rows: Sequence[Mapping[str, Any]]) -> set[int]:
    """The datasets whose data the rows show (for the licences), if the entity has one."""
    if entity in (E.THING, E.DATASTREAM, E.OBSERVATION):
        return {row["dataset_id"] for row in rows if row.get("dataset_id") is not None}
    return set()
