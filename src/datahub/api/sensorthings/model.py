"""The SensorThings data model as the hub serves it: entity types, their properties and
navigation properties (OGC 18-088, version 1.1, section 8).

What each entity is made of in the hub (devices, registry locations, profiles, metrics,
readings) is in storage/sensorthings.py; docs/sensorthings.md tells it for clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """The type of a property, as filters and orderings use it."""

    ID = "id"
    STRING = "string"
    NUMBER = "number"
    TIME = "time"  # an instant
    INTERVAL = "interval"  # a time interval; compares by its start (or end: `…/end`)
    GEOMETRY = "geometry"
    OBJECT = "object"  # JSON: filters reach its keys (`properties/city`)


class EntityType(StrEnum):
    THING = "Thing"
    LOCATION = "Location"
    HISTORICAL_LOCATION = "HistoricalLocation"
    DATASTREAM = "Datastream"
    SENSOR = "Sensor"
    OBSERVED_PROPERTY = "ObservedProperty"
    OBSERVATION = "Observation"
    FEATURE_OF_INTEREST = "FeatureOfInterest"

    @property
    def plural(self) -> str:
        return _PLURALS[self]


_PLURALS = {
    EntityType.THING: "Things",
    EntityType.LOCATION: "Locations",
    EntityType.HISTORICAL_LOCATION: "HistoricalLocations",
    EntityType.DATASTREAM: "Datastreams",
    EntityType.SENSOR: "Sensors",
    EntityType.OBSERVED_PROPERTY: "ObservedProperties",
    EntityType.OBSERVATION: "Observations",
    EntityType.FEATURE_OF_INTEREST: "FeaturesOfInterest",
}
ENTITY_SETS = {entity.plural: entity for entity in EntityType}


@dataclass(frozen=True, slots=True)
class Relation:
    """A navigation property: where it leads, and whether to one entity or a set."""

    name: str
    target: EntityType
    many: bool


def _relations(*relations: Relation) -> dict[str, Relation]:
    return {r.name: r for r in relations}


RELATIONS: dict[EntityType, dict[str, Relation]] = {
    EntityType.THING: _relations(
        Relation("Locations", EntityType.LOCATION, True),
        Relation("HistoricalLocations", EntityType.HISTORICAL_LOCATION, True),
        Relation("Datastreams", EntityType.DATASTREAM, True),
    ),
    EntityType.LOCATION: _relations(
        Relation("Things", EntityType.THING, True),
        Relation("HistoricalLocations", EntityType.HISTORICAL_LOCATION, True),
    ),
    EntityType.HISTORICAL_LOCATION: _relations(
        Relation("Thing", EntityType.THING, False),
        Relation("Locations", EntityType.LOCATION, True),
    ),
    EntityType.DATASTREAM: _relations(
        Relation("Thing", EntityType.THING, False),
        Relation("Sensor", EntityType.SENSOR, False),
        Relation("ObservedProperty", EntityType.OBSERVED_PROPERTY, False),
        Relation("Observations", EntityType.OBSERVATION, True),
    ),
    EntityType.SENSOR: _relations(Relation("Datastreams", EntityType.DATASTREAM, True)),
    EntityType.OBSERVED_PROPERTY: _relations(Relation("Datastreams", EntityType.DATASTREAM, True)),
    EntityType.OBSERVATION: _relations(
        Relation("Datastream", EntityType.DATASTREAM, False),
        Relation("FeatureOfInterest", EntityType.FEATURE_OF_INTEREST, False),
    ),
    EntityType.FEATURE_OF_INTEREST: _relations(
        Relation("Observations", EntityType.OBSERVATION, True)
    ),
}

# Properties in the order the standard lists them; `@iot.id` first (`id` is its alias).
PROPERTIES: dict[EntityType, dict[str, Kind]] = {
    EntityType.THING: {
        "@iot.id": Kind.ID,
        "name": Kind.STRING,
        "description": Kind.STRING,
        "properties": Kind.OBJECT,
    },
    EntityType.LOCATION: {
        "@iot.id": Kind.ID,
        "name": Kind.STRING,
        "description": Kind.STRING,
        "encodingType": Kind.STRING,
        "location": Kind.GEOMETRY,
        "properties": Kind.OBJECT,
    },
    EntityType.HISTORICAL_LOCATION: {"@iot.id": Kind.ID, "time": Kind.TIME},
    EntityType.DATASTREAM: {
        "@iot.id": Kind.ID,
        "name": Kind.STRING,
        "description": Kind.STRING,
        "unitOfMeasurement": Kind.OBJECT,
        "observationType": Kind.STRING,
        "observedArea": Kind.GEOMETRY,
        "phenomenonTime": Kind.INTERVAL,
        "resultTime": Kind.INTERVAL,
        "properties": Kind.OBJECT,
    },
    EntityType.SENSOR: {
        "@iot.id": Kind.ID,
        "name": Kind.STRING,
        "description": Kind.STRING,
        "encodingType": Kind.STRING,
        "metadata": Kind.STRING,
        "properties": Kind.OBJECT,
    },
    EntityType.OBSERVED_PROPERTY: {
        "@iot.id": Kind.ID,
        "name": Kind.STRING,
        "definition": Kind.STRING,
        "description": Kind.STRING,
        "properties": Kind.OBJECT,
    },
    EntityType.OBSERVATION: {
        "@iot.id": Kind.ID,
        "phenomenonTime": Kind.TIME,
        "result": Kind.NUMBER,
        "resultTime": Kind.TIME,
        "resultQuality": Kind.STRING,
        "validTime": Kind.INTERVAL,
        "parameters": Kind.OBJECT,
    },
    EntityType.FEATURE_OF_INTEREST: {
        "@iot.id": Kind.ID,
        "name": Kind.STRING,
        "description": Kind.STRING,
        "encodingType": Kind.STRING,
        "feature": Kind.GEOMETRY,
        "properties": Kind.OBJECT,
    },
}

# The keys of JSON properties that filters and orderings may reach, with their kinds.
OBJECT_KEYS: dict[tuple[EntityType, str], dict[str, Kind]] = {
    (EntityType.THING, "properties"): {
        "dev_eui": Kind.STRING,
        "city": Kind.STRING,
        "supplier": Kind.STRING,
        "dataset": Kind.STRING,
        "profile": Kind.STRING,
        "licence": Kind.STRING,
    },
    (EntityType.LOCATION, "properties"): {"since": Kind.TIME},
    (EntityType.FEATURE_OF_INTEREST, "properties"): {"since": Kind.TIME},
    (EntityType.DATASTREAM, "unitOfMeasurement"): {
        "name": Kind.STRING,
        "symbol": Kind.STRING,
        "definition": Kind.STRING,
    },
    (EntityType.DATASTREAM, "properties"): {
        "dataset": Kind.STRING,
        "licence": Kind.STRING,
        "metric": Kind.STRING,
    },
    (EntityType.SENSOR, "properties"): {"vendor": Kind.STRING, "model": Kind.STRING},
    (EntityType.OBSERVED_PROPERTY, "properties"): {"unit": Kind.STRING},
    (EntityType.OBSERVATION, "parameters"): {"decoder": Kind.STRING},
}

# Properties left out of an entity when they have no value (they are optional).
OPTIONAL = {"resultQuality", "validTime", "observedArea", "phenomenonTime", "resultTime"}


def property_name(entity: EntityType, name: str) -> str | None:
    """Return the property `name` refers to (`id` is `@iot.id`), or None if there is none."""
    if name == "id":
        name = "@iot.id"
    return name if name in PROPERTIES[entity] else None
