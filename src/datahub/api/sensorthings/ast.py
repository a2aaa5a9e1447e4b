"""The typed syntax tree of SensorThings query options, as parser.py builds it and
storage/sensorthings.py renders it to parameterized SQL.

Names are resolved while parsing: a `Prop` is a property of a known entity type, reached
over known navigation properties, so the renderer never sees a name a client typed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from datahub.api.sensorthings.model import EntityType, Kind, Relation


class Type(StrEnum):
    """What an expression evaluates to."""

    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    TIME = "time"
    DURATION = "duration"
    GEOMETRY = "geometry"
    NULL = "null"


@dataclass(frozen=True, slots=True)
class Geometry:
    """A WKT literal: a point (one coordinate pair), a line string or a polygon (one ring)."""

    kind: str  # Point | LineString | Polygon
    coordinates: tuple[tuple[float, float], ...]  # (x, y) = (longitude, latitude)


Value = str | int | float | bool | datetime | timedelta | Geometry | None


@dataclass(frozen=True, slots=True)
class Literal:
    value: Value
    type: Type


@dataclass(frozen=True, slots=True)
class Prop:
    """A property of the entity `entity`, reached from the query's entity over `hops`.

    `key` is a key of a JSON property (`properties/city`), or `start`/`end` of a time
    interval; None for the property itself.
    """

    hops: tuple[Relation, ...]
    entity: EntityType
    name: str
    kind: Kind
    key: str | None = None
    key_kind: Kind | None = None

    @property
    def type(self) -> Type:
        kind = self.key_kind if self.key_kind is not None else self.kind
        return _PROP_TYPES[kind]


_PROP_TYPES = {
    Kind.ID: Type.NUMBER,
    Kind.STRING: Type.STRING,
    Kind.NUMBER: Type.NUMBER,
    Kind.TIME: Type.TIME,
    Kind.INTERVAL: Type.TIME,
    Kind.GEOMETRY: Type.GEOMETRY,
    Kind.OBJECT: Type.STRING,
}


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "-" or "not"
    operand: Expr
    type: Type


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # eq ne gt ge lt le | and or | add sub mul div mod
    left: Expr
    right: Expr
    type: Type


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Expr, ...]
    type: Type


Expr = Literal | Prop | Unary | Binary | Call


@dataclass(frozen=True, slots=True)
class OrderBy:
    expr: Expr
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Options:
    """The query options of a request, or of one `$expand`ed navigation property."""

    filter: Expr | None = None
    orderby: tuple[OrderBy, ...] = ()
    top: int | None = None
    skip: int = 0
    count: bool = False
    select: tuple[str, ...] = ()  # property and navigation names; empty: all properties
    expand: tuple[Expand, ...] = ()


@dataclass(frozen=True, slots=True)
class Expand:
    relation: Relation
    options: Options = field(default_factory=Options)
    raw: str = ""  # the options as written (`$top=3;$orderby=…`), for its next page's link
