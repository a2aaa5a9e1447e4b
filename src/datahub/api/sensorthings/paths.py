"""Resource paths (OGC 18-088 section 9.2): an entity set, entities by id, navigation
properties, a property with `/$value`, and `$ref`, e.g.

    Datastreams(4217)/Observations          Things(42)/Locations(7)/HistoricalLocations
    Observations(1234)/result/$value        Things(42)/Datastreams/$ref
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datahub.api.sensorthings.model import ENTITY_SETS, RELATIONS, EntityType, property_name
from datahub.errors import BadRequest, NotFound

_SEGMENT = re.compile(r"^([A-Za-z]+)(?:\((.*)\))?$")


@dataclass(frozen=True, slots=True)
class Step:
    """One entity (with an id, or reached over a to-one navigation) or one set."""

    entity: EntityType
    entity_id: int | None
    via: str | None  # the navigation property from the step before; None for the first
    single: bool  # one entity (by id, or to-one), not a set


@dataclass(frozen=True, slots=True)
class ResourcePath:
    steps: tuple[Step, ...]
    property: str | None = None
    value: bool = False  # `…/property/$value`
    ref: bool = False  # `…/$ref`


def parse_path(path: str) -> ResourcePath:
    """Parse the path below the service root; BadRequest or NotFound for what is wrong."""
    segments = [s for s in path.split("/") if s]
    if not segments:
        raise BadRequest("an empty resource path")
    steps: list[Step] = []
    rest = segments
    while rest:
        segment = rest[0]
        match = _SEGMENT.match(segment)
        name = match.group(1) if match else None
        if not steps:
            entity = ENTITY_SETS.get(name or "")
            if entity is None:
                raise NotFound(f"no entity set {segment!r}; the sets are {', '.join(ENTITY_SETS)}")
            via, many = None, True
        else:
            last = steps[-1]
            relation = RELATIONS[last.entity].get(name or "")
            if relation is None:
                break
            if not last.single:
                raise BadRequest(
                    f"{segment}: address one {last.entity} by its id before navigating from it"
                )
            entity, via, many = relation.target, relation.name, relation.many
        assert match is not None
        raw_id = match.group(2)
        entity_id = None
        if raw_id is not None:
            if not many:
                raise BadRequest(f"{name} leads to one entity; it takes no id")
            entity_id = _entity_id(entity, raw_id)
        steps.append(Step(entity, entity_id, via, single=entity_id is not None or not many))
        rest = rest[1:]
    resource = ResourcePath(tuple(steps))
    if not rest:
        return resource
    last = steps[-1]
    if rest == ["$ref"]:
        return ResourcePath(resource.steps, ref=True)
    if not last.single:
        raise NotFound(f"{rest[0]!r} is neither a navigation property of {last.entity} nor $ref")
    prop = property_name(last.entity, rest[0])
    if prop is None:
        raise NotFound(f"{last.entity} has no property or navigation property {rest[0]!r}")
    if rest[1:] == ["$value"]:
        return ResourcePath(resource.steps, property=prop, value=True)
    if rest[1:]:
        raise NotFound(f"nothing lies below {rest[0]}{'/' + rest[1] if len(rest) > 1 else ''}")
    return ResourcePath(resource.steps, property=prop)


def _entity_id(entity: EntityType, raw: str) -> int:
    """Every id of the hub is an integer; a quoted or other id names no entity."""
    if not raw.isdigit():
        raise NotFound(f"no {entity} has id {raw}")
    return int(raw)
