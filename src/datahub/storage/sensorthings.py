"""SensorThings entities as SQL: what each entity set is made of, and the rendering of a
query's typed tree (api/sensorthings/ast.py) into one parameterized statement.

Every value a client sends becomes a bound parameter; the statement's text is built only
from the names below, chosen by the resolved tree. The entity sets:

- Things: `device` (with its supplier and dataset);
- Locations, HistoricalLocations and FeaturesOfInterest: `device_location`, one row per
  place a device has been, from when (a Thing's Locations: its current one);
- Sensors: `profile`; ObservedProperties: `metric`;
- Datastreams: each device with each metric of its profile or of its readings
  (`reading_latest`), id `device_id * 100 + metric_id`;
- Observations: `reading`, id from the Datastream's and the time (datahub/observations.py);
  an Observation's FeatureOfInterest is its device's location at its time.

Aliases in the templates start with `@`, replaced by a prefix per use, so one statement
can nest the same set twice (a filter over a navigation path, an expansion).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from datahub import observations
from datahub.api.sensorthings.ast import (
    Binary,
    Call,
    Expr,
    Geometry,
    Literal,
    OrderBy,
    Prop,
    Type,
    Unary,
)
from datahub.api.sensorthings.model import EntityType, Kind, Relation
from datahub.privacy import Grid
from datahub.storage import buckets, privacy, rollups

Row = dict[str, Any]
E = EntityType

_VISIBLE = "(%(ds)s::int[] IS NULL OR @d.dataset_id = ANY(%(ds)s::int[]))"

# The privacy rule (datahub/privacy.py) on a device `@d`, for the caller's grants `gr`:
# each column shows what the caller may see, so that a $filter or $orderby on it learns
# nothing more than the value shown.
_CLASS = privacy.privacy_of("@d")
_PROTECTED = privacy.protected("@d", "gr")
_SHOWN_ID = privacy.shown_id("@d", "gr")
# A name is the shown id where datahub.privacy.View.name says so.
_SHOWN_NAME = (
    f"CASE WHEN {_PROTECTED} AND ({_CLASS} = 'private_owner' OR @d.name ~ '[0-9A-Fa-f]{{16}}')"
    f" THEN {_SHOWN_ID} ELSE @d.name END"
)
# Datastreams and Observations of protected personal devices are not shown at all.
_SERIES_SHOWN = f"NOT ({_CLASS} = 'personal' AND {_PROTECTED})"


def _shown_position(table: str, axis: str, step: str) -> Column:
    """A latitude or longitude of `table`, snapped to the grid for a protected private
    owner's device."""
    return Column(
        f"CASE WHEN {_PROTECTED} AND {_CLASS} = 'private_owner'"
        f" THEN {privacy.snapped(f'{table}.{axis}', f'%({step})s::float8')}"
        f" ELSE {table}.{axis} END",
        "float8",
        table == "@d",
    )


@dataclass(frozen=True, slots=True)
class Column:
    sql: str
    type: str  # the SQL type, for arrays of parent values
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class Source:
    """One entity set: its FROM clause (ending in a WHERE) and its columns."""

    from_: str
    columns: Mapping[str, Column]
    id_order: tuple[str, ...] = ("id",)  # the columns ordering by @iot.id


def _cols(**columns: Column | str) -> dict[str, Column]:
    return {k: v if isinstance(v, Column) else Column(v, "int") for k, v in columns.items()}


def _text(sql: str, nullable: bool = False) -> Column:
    return Column(sql, "text", nullable)


_LOCATION_COLUMNS = _cols(
    id="@l.id",
    device_id="@l.device_id",
    dataset_id="@d.dataset_id",
    latitude=_shown_position("@l", "latitude", "grid_lat"),
    longitude=_shown_position("@l", "longitude", "grid_lon"),
    since=Column("@l.since", "timestamptz"),
    device_name=_text(_SHOWN_NAME),
    name=_text(f"'Location of ' || {_SHOWN_NAME}"),
    description=_text(
        f"'Where ' || {_SHOWN_NAME} || ' has been since '"
        " || to_char(@l.since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    ),
    encoding=_text("'application/geo+json'"),
    current=Column(
        "(@d.latitude IS NOT NULL AND NOT EXISTS (SELECT 1 FROM device_location @n"
        " WHERE @n.device_id = @l.device_id AND (@n.since, @n.id) > (@l.since, @l.id)))",
        "bool",
    ),
    first=Column(
        "NOT EXISTS (SELECT 1 FROM device_location @n"
        " WHERE @n.device_id = @l.device_id AND (@n.since, @n.id) < (@l.since, @l.id))",
        "bool",
    ),
    until=Column(
        "(SELECT min(@n.since) FROM device_location @n"
        " WHERE @n.device_id = @l.device_id AND (@n.since, @n.id) > (@l.since, @l.id))",
        "timestamptz",
        True,
    ),
)
_LOCATIONS = Source(
    "device_location @l JOIN device @d ON @d.id = @l.device_id WHERE " + _VISIBLE,
    _LOCATION_COLUMNS,
)
_DATASET_COLUMNS = _cols(
    dataset_id="@d.dataset_id",
    dataset=_text("@ds.slug"),
    licence=_text("@ds.licence_id"),
    licence_name=_text("@ds.licence_name"),
    licence_url=_text("@ds.licence_url", True),
    attribution=_text("@ds.attribution"),
)
_UNITS = (
    "unnest(%(m_name)s::text[], %(m_unit)s::text[], %(m_unit_name)s::text[],"
    " %(m_symbol)s::text[], %(m_definition)s::text[], %(m_description)s::text[])"
    " AS @u (metric, unit, unit_name, symbol, definition, description)"
)

SOURCES: dict[EntityType, Source] = {
    E.THING: Source(
        "device @d JOIN supplier @s ON @s.id = @d.supplier_id"
        " JOIN dataset @ds ON @ds.id = @d.dataset_id WHERE " + _VISIBLE,
        _cols(
            id="@d.id",
            name=_text(_SHOWN_NAME),
            description=_text(
                "@d.profile || ' sensor of ' || @s.name || ' in ' || initcap(@d.city)"
            ),
            dev_eui=_text(_SHOWN_ID),
            city=_text("@d.city"),
            profile=_text("@d.profile"),
            supplier=_text("@s.slug"),
            supplier_name=_text("@s.name"),
            **_DATASET_COLUMNS,
        ),
    ),
    E.LOCATION: _LOCATIONS,
    E.HISTORICAL_LOCATION: _LOCATIONS,
    E.FEATURE_OF_INTEREST: _LOCATIONS,
    E.DATASTREAM: Source(
        "device @d JOIN dataset @ds ON @ds.id = @d.dataset_id"
        " CROSS JOIN LATERAL ("
        "SELECT @c.metric FROM unnest(%(cat_profile)s::text[], %(cat_metric)s::text[])"
        " AS @c (profile, metric) WHERE @c.profile = @d.profile"
        " UNION SELECT @q.metric FROM reading_latest @q WHERE @q.device_id = @d.id) AS @p"
        " JOIN metric @m ON @m.name = @p.metric"
        " LEFT JOIN " + _UNITS + " ON @u.metric = @m.name"
        " WHERE " + _VISIBLE + " AND " + _SERIES_SHOWN,
        _cols(
            id="@d.id * 100 + @m.id",
            device_id="@d.id",
            metric_id="@m.id",
            metric=_text("@m.name"),
            profile=_text("@d.profile"),
            device_name=_text(_SHOWN_NAME),
            name=_text(f"{_SHOWN_NAME} || ' ' || @m.name"),
            description=_text(f"coalesce(@u.description, @m.name) || ' at ' || {_SHOWN_NAME}"),
            unit=_text("@u.unit", True),
            unit_name=_text("@u.unit_name", True),
            unit_symbol=_text("@u.symbol", True),
            unit_definition=_text("@u.definition", True),
            observation_type=_text("%(measurement)s::text"),
            latitude=_shown_position("@d", "latitude", "grid_lat"),
            longitude=_shown_position("@d", "longitude", "grid_lon"),
            first_time=Column(
                "(SELECT @r.time FROM reading @r WHERE @r.device_id = @d.id"
                " AND @r.metric = @m.name ORDER BY @r.time LIMIT 1)",
                "timestamptz",
                True,
            ),
            last_time=Column(
                "(SELECT @r.time FROM reading @r WHERE @r.device_id = @d.id"
                " AND @r.metric = @m.name ORDER BY @r.time DESC LIMIT 1)",
                "timestamptz",
                True,
            ),
            **_DATASET_COLUMNS,
        ),
        id_order=("device_id", "metric_id"),
    ),
    E.SENSOR: Source(
        "profile @pr LEFT JOIN unnest(%(s_name)s::text[], %(s_description)s::text[],"
        " %(s_vendor)s::text[], %(s_model)s::text[], %(s_version)s::text[],"
        " %(s_metadata)s::text[]) AS @si (name, description, vendor, model, version, metadata)"
        " ON @si.name = @pr.name"
        # Only the profiles of devices the caller may see: nothing hints at the others.
        " WHERE EXISTS (SELECT 1 FROM device @d WHERE @d.profile = @pr.name AND " + _VISIBLE + ")",
        _cols(
            id="@pr.id",
            name=_text("@pr.name"),
            description=_text("coalesce(@si.description, @pr.name)"),
            encoding=_text("'text/plain'"),
            metadata=_text(
                "coalesce(@si.metadata, @pr.name || ': a profile no longer in the catalog')"
            ),
            vendor=_text("coalesce(@si.vendor, split_part(@pr.name, '/', 1))"),
            model=_text("coalesce(@si.model, split_part(@pr.name, '/', 2))"),
            version=_text("@si.version", True),
        ),
    ),
    E.OBSERVED_PROPERTY: Source(
        "metric @m LEFT JOIN " + _UNITS + " ON @u.metric = @m.name"
        # Only the metrics of Datastreams the caller may see.
        " WHERE (EXISTS (SELECT 1 FROM reading_latest @q JOIN device @d ON @d.id = @q.device_id"
        " WHERE @q.metric = @m.name AND " + _VISIBLE + ")"
        " OR EXISTS (SELECT 1 FROM unnest(%(cat_profile)s::text[], %(cat_metric)s::text[])"
        " AS @c (profile, metric) JOIN device @d ON @d.profile = @c.profile"
        " WHERE @c.metric = @m.name AND " + _VISIBLE + "))",
        _cols(
            id="@m.id",
            name=_text("@m.name"),
            definition=_text("%(metric_base)s::text || @m.name"),
            description=_text("coalesce(@u.description, @m.name)"),
            unit=_text("@u.unit", True),
        ),
    ),
    E.OBSERVATION: Source(
        "reading @r JOIN device @d ON @d.id = @r.device_id JOIN metric @m ON @m.name = @r.metric"
        " LEFT JOIN decoder @dec ON @dec.id = @r.decoder_id WHERE "
        + _VISIBLE
        + " AND "
        + _SERIES_SHOWN,
        _cols(
            id=Column(
                f"((@r.device_id::bigint * {observations.METRIC_SLOTS} + @m.id)"
                f" * {2**observations.TIME_BITS}"
                " + floor(extract(epoch FROM @r.time - %(origin)s::timestamptz)"
                f" * {observations.TICKS_PER_S})::bigint)",
                "int8",
            ),
            device_id="@r.device_id",
            metric_id="@m.id",
            metric=_text("@r.metric"),
            profile=_text("@d.profile"),  # its resolution (api/catalog.py)
            datastream_id=f"@r.device_id * {observations.METRIC_SLOTS} + @m.id",
            time=Column("@r.time", "timestamptz"),
            value=Column("@r.value", "float8"),
            decoder=_text("@dec.name", True),
            dataset_id="@d.dataset_id",
            foi_id=Column(
                "coalesce((SELECT @f.id FROM device_location @f WHERE @f.device_id = @r.device_id"
                " AND @f.since <= @r.time ORDER BY @f.since DESC, @f.id DESC LIMIT 1),"
                " (SELECT @f.id FROM device_location @f WHERE @f.device_id = @r.device_id"
                " ORDER BY @f.since, @f.id LIMIT 1))",
                "int",
                True,
            ),
        ),
        id_order=("device_id", "metric_id", "time"),
    ),
}

# property (and key) -> column, per entity type. Geometries are (longitude, latitude).
_GEOMETRY = ("longitude", "latitude")
PROPERTY_COLUMNS: dict[EntityType, dict[tuple[str, str | None], str | tuple[str, str]]] = {
    E.THING: {
        ("@iot.id", None): "id",
        ("name", None): "name",
        ("description", None): "description",
        **{("properties", k): k for k in ("dev_eui", "city", "supplier", "dataset", "profile")},
        ("properties", "licence"): "licence",
    },
    E.LOCATION: {
        ("@iot.id", None): "id",
        ("name", None): "name",
        ("description", None): "description",
        ("encodingType", None): "encoding",
        ("location", None): _GEOMETRY,
        ("properties", "since"): "since",
    },
    E.HISTORICAL_LOCATION: {("@iot.id", None): "id", ("time", None): "since"},
    E.DATASTREAM: {
        ("@iot.id", None): "id",
        ("name", None): "name",
        ("description", None): "description",
        ("unitOfMeasurement", "name"): "unit_name",
        ("unitOfMeasurement", "symbol"): "unit_symbol",
        ("unitOfMeasurement", "definition"): "unit_definition",
        ("observationType", None): "observation_type",
        ("observedArea", None): _GEOMETRY,
        ("phenomenonTime", "start"): "first_time",
        ("phenomenonTime", "end"): "last_time",
        ("resultTime", "start"): "first_time",
        ("resultTime", "end"): "last_time",
        ("properties", "dataset"): "dataset",
        ("properties", "licence"): "licence",
        ("properties", "metric"): "metric",
    },
    E.SENSOR: {
        ("@iot.id", None): "id",
        ("name", None): "name",
        ("description", None): "description",
        ("encodingType", None): "encoding",
        ("metadata", None): "metadata",
        ("properties", "vendor"): "vendor",
        ("properties", "model"): "model",
    },
    E.OBSERVED_PROPERTY: {
        ("@iot.id", None): "id",
        ("name", None): "name",
        ("definition", None): "definition",
        ("description", None): "description",
        ("properties", "unit"): "unit",
    },
    E.OBSERVATION: {
        ("@iot.id", None): "id",
        ("phenomenonTime", None): "time",
        ("resultTime", None): "time",
        ("result", None): "value",
        ("parameters", "decoder"): "decoder",
    },
    E.FEATURE_OF_INTEREST: {
        ("@iot.id", None): "id",
        ("name", None): "name",
        ("description", None): "description",
        ("encodingType", None): "encoding",
        ("feature", None): _GEOMETRY,
        ("properties", "since"): "since",
    },
}


def _edge(template: str) -> Callable[[Callable[[str], str], Callable[[str], str]], str]:
    """A relation's join condition; `{a.x}` is column x of the source, `{b.y}` of the target."""

    def condition(a: Callable[[str], str], b: Callable[[str], str]) -> str:
        out = template
        for side, resolve in (("a", a), ("b", b)):
            while "{" + side + "." in out:
                start = out.index("{" + side + ".")
                end = out.index("}", start)
                out = out[:start] + resolve(out[start + 3 : end]) + out[end + 1 :]
        return out

    return condition


# (entity, navigation property) -> the condition joining an entity `a` to a related `b`.
JOINS = {
    (E.THING, "Locations"): _edge("{b.device_id} = {a.id} AND {b.current}"),
    (E.THING, "HistoricalLocations"): _edge("{b.device_id} = {a.id}"),
    (E.THING, "Datastreams"): _edge("{b.device_id} = {a.id}"),
    (E.LOCATION, "Things"): _edge("{b.id} = {a.device_id}"),
    (E.LOCATION, "HistoricalLocations"): _edge("{b.id} = {a.id}"),
    (E.HISTORICAL_LOCATION, "Thing"): _edge("{b.id} = {a.device_id}"),
    (E.HISTORICAL_LOCATION, "Locations"): _edge("{b.id} = {a.id}"),
    (E.DATASTREAM, "Thing"): _edge("{b.id} = {a.device_id}"),
    (E.DATASTREAM, "Sensor"): _edge("{b.name} = {a.profile}"),
    (E.DATASTREAM, "ObservedProperty"): _edge("{b.id} = {a.metric_id}"),
    (E.DATASTREAM, "Observations"): _edge(
        "{b.device_id} = {a.device_id} AND {b.metric} = {a.metric}"
        " AND {b.metric_id} = {a.metric_id}"
    ),
    (E.SENSOR, "Datastreams"): _edge("{b.profile} = {a.name}"),
    (E.OBSERVED_PROPERTY, "Datastreams"): _edge("{b.metric_id} = {a.id}"),
    (E.OBSERVATION, "Datastream"): _edge("{b.id} = {a.datastream_id}"),
    (E.OBSERVATION, "FeatureOfInterest"): _edge("{b.id} = {a.foi_id}"),
    (E.FEATURE_OF_INTEREST, "Observations"): _edge(
        "{b.device_id} = {a.device_id} AND ({a.first} OR {b.time} >= {a.since})"
        " AND ({a.until} IS NULL OR {b.time} < {a.until})"
    ),
}


@dataclass(frozen=True, slots=True)
class Catalog:
    """What the device catalog tells of metrics and profiles, passed to every statement."""

    pairs: Sequence[tuple[str, str]]  # (profile, metric) of every profile's mapping
    metrics: Sequence[tuple[str, str, str, str, str, str]]
    # (metric, unit, unit name, UCUM symbol, unit definition URI, description)
    sensors: Sequence[tuple[str, str, str, str, str, str]]
    # (profile, description, vendor, model, version, metadata)


@dataclass(frozen=True, slots=True)
class Scope:
    """Who asks (the datasets they may see; None: all) and the catalog and URLs to use."""

    dataset_ids: Sequence[int] | None
    catalog: Catalog
    metric_base: str  # an ObservedProperty's definition is this followed by its name
    # The datasets whose protected devices the caller sees as they are (None: all), and
    # the grid a protected private owner's position snaps to (datahub/privacy.py).
    granted: frozenset[int] | None
    grid: Grid

    def params(self) -> dict[str, Any]:
        c = self.catalog
        return {
            "ds": list(self.dataset_ids) if self.dataset_ids is not None else None,
            "gr": privacy.granted_param(self.granted),
            "grid_lat": self.grid.lat_step,
            "grid_lon": self.grid.lon_step,
            "cat_profile": [p for p, _ in c.pairs],
            "cat_metric": [m for _, m in c.pairs],
            **{
                f"m_{name}": [row[i] for row in c.metrics]
                for i, name in enumerate(
                    ("name", "unit", "unit_name", "symbol", "definition", "description")
                )
            },
            **{
                f"s_{name}": [row[i] for row in c.sensors]
                for i, name in enumerate(
                    ("name", "description", "vendor", "model", "version", "metadata")
                )
            },
            "metric_base": self.metric_base,
            "measurement": observations.MEASUREMENT,
            "origin": observations.ORIGIN,
        }


class Statement:
    """A statement being built: its parameters, and fresh alias prefixes."""

    def __init__(self, scope: Scope) -> None:
        self.params = scope.params()
        self._aliases = 0

    def bind(self, value: object) -> str:
        name = f"v{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    def prefix(self) -> str:
        self._aliases += 1
        return f"t{self._aliases}_"


@dataclass(frozen=True, slots=True)
class Alias:
    """One use of a source in a statement."""

    entity: EntityType
    prefix: str

    @property
    def source(self) -> Source:
        return SOURCES[self.entity]

    def col(self, name: str) -> str:
        return "(" + self.source.columns[name].sql.replace("@", self.prefix) + ")"

    def from_(self) -> str:
        return self.source.from_.replace("@", self.prefix)


class SqlError(ValueError):
    """The tree asks for something no SQL here renders (an unsupported geometry test)."""


# -- expressions


@dataclass(frozen=True, slots=True)
class _Bound:
    """A part of an expression already rendered, over an enclosing entity."""

    sql: str
    type: Type


def render(expr: Expr, alias: Alias, stmt: Statement) -> str:
    """Render a filter or ordering expression over the entity `alias`."""
    return _render(expr, alias, stmt)


def _props(expr: Any) -> list[Prop]:
    if isinstance(expr, Prop):
        return [expr]
    if isinstance(expr, Unary):
        return _props(expr.operand)
    if isinstance(expr, Binary):
        return _props(expr.left) + _props(expr.right)
    if isinstance(expr, Call):
        return [p for a in expr.args for p in _props(a)]
    return []


def _strip(expr: Any, hop: Relation, outer: Alias, stmt: Statement) -> Any:
    """Rewrite an expression for the entity at the end of `hop`: paths that follow it lose
    it; every other property is rendered over the enclosing entity `outer`."""
    if isinstance(expr, Prop):
        if expr.hops and expr.hops[0] == hop:
            return Prop(expr.hops[1:], expr.entity, expr.name, expr.kind, expr.key, expr.key_kind)
        return _Bound(_render(expr, outer, stmt), expr.type)
    if isinstance(expr, Unary):
        return Unary(expr.op, _strip(expr.operand, hop, outer, stmt), expr.type)
    if isinstance(expr, Binary):
        return Binary(
            expr.op,
            _strip(expr.left, hop, outer, stmt),
            _strip(expr.right, hop, outer, stmt),
            expr.type,
        )
    if isinstance(expr, Call):
        return Call(expr.name, tuple(_strip(a, hop, outer, stmt) for a in expr.args), expr.type)
    return expr


def _related(alias: Alias, hop: Relation, stmt: Statement) -> tuple[Alias, str]:
    """The entity at the end of `hop` from `alias`: its alias, and `FROM … WHERE …`."""
    target = Alias(hop.target, stmt.prefix())
    join = JOINS[alias.entity, hop.name](alias.col, target.col)
    return target, f"{target.from_()} AND {join}"


def _leaf(expr: Any, alias: Alias, stmt: Statement) -> str | None:
    """A condition over a path with a to-many step holds if it holds for any entity at its
    end: EXISTS over the path's first step, recursively. None if no path has such a step."""
    for prop in _props(expr):
        if any(h.many for h in prop.hops):
            hop = prop.hops[0]
            target, from_where = _related(alias, hop, stmt)
            inner = _render(_strip(expr, hop, alias, stmt), target, stmt)
            return f"EXISTS (SELECT 1 FROM {from_where} AND {inner})"
    return None


def _scalar(prop: Prop, alias: Alias, stmt: Statement, end: bool) -> str:
    """A property over to-one steps, as a scalar subquery."""
    if not prop.hops:
        return _column(prop, alias, end)
    target, from_where = _related(alias, prop.hops[0], stmt)
    rest = Prop(prop.hops[1:], prop.entity, prop.name, prop.kind, prop.key, prop.key_kind)
    return f"(SELECT {_scalar(rest, target, stmt, end)} FROM {from_where} LIMIT 1)"


def _column(prop: Prop, alias: Alias, end: bool = False) -> str:
    key = prop.key
    if prop.kind is Kind.INTERVAL and key is None:
        key = "end" if end else "start"
    mapped = PROPERTY_COLUMNS[prop.entity].get((prop.name, key))
    if mapped is None:
        return "NULL"  # an optional property the hub never sets (resultQuality, validTime)
    if isinstance(mapped, tuple):
        raise SqlError(f"{prop.name} is a geometry: test it with a geo function")
    return alias.col(mapped)


_COMPARE = {"eq": "=", "ne": "IS DISTINCT FROM", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_ARITHMETIC = {"add": "+", "sub": "-", "mul": "*", "mod": "%"}
_EXTRACT = {"year", "month", "day", "hour", "minute"}
_BOOLEAN_LEAVES = set(_COMPARE) | {"substringof", "contains", "startswith", "endswith"}


def _render(expr: Any, alias: Alias, stmt: Statement, end: bool = False) -> str:
    if isinstance(expr, _Bound):
        return expr.sql
    if isinstance(expr, Prop):
        if any(h.many for h in expr.hops):
            raise SqlError("a to-many path can only be compared, not ordered by")
        return _scalar(expr, alias, stmt, end)
    if isinstance(expr, Literal):
        return _literal(expr, stmt)
    if isinstance(expr, Unary):
        if expr.op == "not":
            return f"(NOT {_render(expr.operand, alias, stmt)})"
        return f"(-{_render(expr.operand, alias, stmt)})"
    if isinstance(expr, Binary) and expr.op in ("and", "or"):
        left, right = _render(expr.left, alias, stmt), _render(expr.right, alias, stmt)
        return f"({left} {expr.op.upper()} {right})"
    if expr.type is Type.BOOLEAN and (leaf := _leaf(expr, alias, stmt)) is not None:
        return leaf
    if isinstance(expr, Binary):
        return _binary(expr, alias, stmt)
    return _call(expr, alias, stmt)


def _literal(expr: Literal, stmt: Statement) -> str:
    value = expr.value
    if isinstance(value, Geometry):
        raise SqlError("a geometry is only an argument of a geo function")
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return stmt.bind(value) + "::bool"
    if isinstance(value, int):
        # bigint where it fits, so that an integer column's index still answers
        return stmt.bind(value) + ("::int8" if -(2**63) <= value < 2**63 else "::numeric")
    if isinstance(value, float):
        return stmt.bind(value) + "::float8"
    if isinstance(value, datetime):
        return stmt.bind(value) + "::timestamptz"
    if isinstance(value, timedelta):
        return stmt.bind(value) + "::interval"
    return stmt.bind(value) + "::text"


def _binary(expr: Binary, alias: Alias, stmt: Statement) -> str:
    left, right = expr.left, expr.right
    if expr.op in _COMPARE:
        for side, other in ((right, left), (left, right)):
            if isinstance(side, Literal) and side.value is None:
                negate = "NOT " if expr.op == "ne" else ""
                return f"({_render(other, alias, stmt)} IS {negate}NULL)"
        # An interval lies after a time by its start, before it by its end.
        end = expr.op in ("lt", "le")
        a, b = _render(left, alias, stmt, end), _render(right, alias, stmt, not end)
        return f"({a} {_COMPARE[expr.op]} {b})"
    a, b = _render(left, alias, stmt), _render(right, alias, stmt)
    if expr.op == "div":
        return f"({a}::float8 / nullif({b}::float8, 0))"
    if expr.op == "mod":
        return f"mod(({a})::numeric, nullif(({b})::numeric, 0))::float8"
    return f"({a} {_ARITHMETIC[expr.op]} {b})"


def _call(expr: Call, alias: Alias, stmt: Statement) -> str:
    name, args = expr.name, expr.args
    if name.startswith(("geo.", "st_")):
        return _geo(name, args, alias, stmt)
    if name in ("mindatetime", "maxdatetime"):
        return _render(args[0], alias, stmt, name == "maxdatetime")
    a = [_render(x, alias, stmt) for x in args]
    utc = [f"({x} AT TIME ZONE 'UTC')" for x in a]
    if name in _EXTRACT:
        return f"extract({name} FROM {utc[0]})::int"
    rendered: dict[str, Callable[[], str]] = {
        "substringof": lambda: f"(strpos({a[1]}, {a[0]}) > 0)",
        "contains": lambda: f"(strpos({a[0]}, {a[1]}) > 0)",
        "startswith": lambda: f"(left({a[0]}, length({a[1]})) = {a[1]})",
        "endswith": lambda: f"(right({a[0]}, length({a[1]})) = {a[1]})",
        "length": lambda: f"length({a[0]})",
        "indexof": lambda: f"(strpos({a[0]}, {a[1]}) - 1)",
        "substring": lambda: (
            f"substr({a[0]}, ({a[1]})::int + 1" + (f", ({a[2]})::int)" if len(a) > 2 else ")")
        ),
        "tolower": lambda: f"lower({a[0]})",
        "toupper": lambda: f"upper({a[0]})",
        "trim": lambda: f"btrim({a[0]})",
        "concat": lambda: f"({a[0]} || {a[1]})",
        "second": lambda: f"floor(extract(second FROM {utc[0]}))::int",
        "fractionalseconds": lambda: (
            f"(extract(second FROM {utc[0]}) - floor(extract(second FROM {utc[0]})))::float8"
        ),
        "date": lambda: f"(date_trunc('day', {utc[0]}) AT TIME ZONE 'UTC')",
        "totaloffsetminutes": lambda: "0",
        "now": lambda: "now()",
        "round": lambda: f"round(({a[0]})::numeric)::float8",
        "floor": lambda: f"floor({a[0]})",
        "ceiling": lambda: f"ceil({a[0]})",
    }
    return rendered[name]()


def _point(expr: Expr, alias: Alias) -> tuple[str, str] | None:
    if isinstance(expr, Prop) and not expr.hops:
        mapped = PROPERTY_COLUMNS[expr.entity].get((expr.name, None))
        if isinstance(mapped, tuple):
            return alias.col(mapped[0]), alias.col(mapped[1])
    return None


def _geo(name: str, args: Sequence[Expr], alias: Alias, stmt: Statement) -> str:
    """Geo functions between a location (every location of the hub is a point) and a
    geometry literal, in PostgreSQL's own geometric types (no PostGIS needed)."""
    first, second = args
    point = _point(first, alias) or _point(second, alias)
    literal = next(
        (a.value for a in args if isinstance(a, Literal) and isinstance(a.value, Geometry)), None
    )
    if point is None or literal is None:
        raise SqlError(f"{name} compares a location property with a geometry literal")
    lon, lat = point
    if name == "geo.distance":
        if literal.kind != "Point":
            raise SqlError("geo.distance measures to a POINT")
        x, y = (stmt.bind(v) + "::float8" for v in literal.coordinates[0])
        # Haversine on the mean Earth radius (6,371,008.8 m): metres between two points.
        return (
            f"(12742017.6 * asin(sqrt(power(sin(radians({y} - {lat}) / 2), 2)"
            f" + cos(radians({lat})) * cos(radians({y}))"
            f" * power(sin(radians({x} - {lon}) / 2), 2))))"
        )
    if literal.kind == "Point":
        x, y = (stmt.bind(v) + "::float8" for v in literal.coordinates[0])
        inside = f"({lon} = {x} AND {lat} = {y})"
    elif literal.kind == "Polygon":
        ring = ",".join(f"({x!r},{y!r})" for x, y in literal.coordinates)
        # A polygon contains the points on its boundary too.
        inside = f"({stmt.bind('(' + ring + ')')}::polygon @> point({lon}, {lat}))"
    else:
        raise SqlError(f"{name} tests a location against a POINT or a POLYGON")
    if name == "st_within" and isinstance(first, Literal):
        raise SqlError("st_within(location, geometry): the location comes first")
    if name == "st_contains" and not isinstance(first, Literal):
        # A point contains a polygon never, a point only if equal.
        return f"coalesce({inside}, false)" if literal.kind == "Point" else "false"
    if name == "st_disjoint":
        return f"NOT coalesce({inside}, false)"
    return f"coalesce({inside}, false)"


# -- queries


@dataclass(frozen=True, slots=True)
class Parent:
    """The entity a collection hangs off: its type, its row, and the navigation followed."""

    entity: EntityType
    row: Row
    relation: Relation


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row]
    more: bool
    keys: list[Any] | None = None  # the order keys of the last row, for the next cursor


@dataclass(frozen=True, slots=True)
class Query:
    """One collection (or one entity, by `entity_id`) to read, and the page of it."""

    entity: EntityType
    columns: frozenset[str]
    filter: Expr | None = None
    orderby: tuple[OrderBy, ...] = ()
    parent: Parent | None = None
    entity_id: int | None = None
    after: Sequence[Any] | None = None  # order keys of the last row of the previous page
    skip: int = 0
    limit: int | None = None


Resolver = Callable[[str], str]


def _fixed(query: Query) -> set[str]:
    """The @iot.id columns that the parent fixes (they order nothing)."""
    if query.parent is not None and (query.parent.entity, query.parent.relation.name) == (
        E.DATASTREAM,
        "Observations",
    ):
        return {"device_id", "metric_id"}
    return set()


def _order_keys(
    query: Query, alias: Alias, stmt: Statement, fixed: set[str]
) -> list[tuple[str, bool, bool]]:
    """(SQL, descending, nullable) per order key: the ordering asked for, then @iot.id."""
    keys: list[tuple[str, bool, bool]] = []
    seen: set[str] = set()
    for item in query.orderby:
        text = _render(item.expr, alias, stmt)
        nullable = True
        if isinstance(item.expr, Prop) and not item.expr.hops:
            mapped = PROPERTY_COLUMNS[item.expr.entity].get((item.expr.name, item.expr.key))
            if isinstance(mapped, str) and item.expr.kind is not Kind.INTERVAL:
                nullable = alias.source.columns[mapped].nullable
        if text not in seen:
            seen.add(text)
            keys.append((text, item.descending, nullable))
    last = query.orderby[-1].descending if query.orderby else False
    for column in alias.source.id_order:
        text = alias.col(column)
        if column not in fixed and text not in seen:
            seen.add(text)
            keys.append((text, last, False))
    return keys


def _after(keys: Sequence[tuple[str, bool, bool]], values: Sequence[Any], stmt: Statement) -> str:
    """The keyset condition: rows after the row whose order keys were `values`."""
    if len(values) != len(keys):
        raise SqlError("the cursor does not fit this ordering")
    if len({d for _, d, _ in keys}) == 1 and not any(n for _, _, n in keys):
        # One direction and no nulls: a row comparison, which an index answers as a range.
        op = "<" if keys[0][1] else ">"
        left = ", ".join(k for k, _, _ in keys)
        right = ", ".join(stmt.bind(v) for v in values)
        return f"({left}) {op} ({right})" if len(keys) > 1 else f"{left} {op} {right}"
    alternatives = []
    for i, ((key, descending, _), value) in enumerate(zip(keys, values, strict=True)):
        same = [
            f"{k} IS NOT DISTINCT FROM {stmt.bind(v)}"
            for (k, _, _), v in zip(keys[:i], values[:i], strict=True)
        ]
        # Ascending puts nulls last, descending first (PostgreSQL's defaults).
        if value is None:
            later = f"{key} IS NOT NULL" if descending else "false"
        elif descending:
            later = f"{key} < {stmt.bind(value)}"
        else:
            later = f"({key} > {stmt.bind(value)} OR {key} IS NULL)"
        alternatives.append("(" + " AND ".join([*same, later]) + ")")
    return "(" + " OR ".join(alternatives) + ")"


def _id_condition(entity: EntityType, entity_id: int, alias: Alias, stmt: Statement) -> str:
    """Address one entity by its id, in terms the indexes answer."""
    if entity is E.DATASTREAM:
        parts = observations.split_datastream_id(entity_id)
        if parts is None:
            return "false"
        device, metric = (stmt.bind(p) for p in parts)
        return f"{alias.col('device_id')} = {device} AND {alias.col('metric_id')} = {metric}"
    if entity is E.OBSERVATION:
        key = observations.split_observation_id(entity_id)
        if key is None:
            return "false"
        metric_id = stmt.bind(key.metric_id)
        return (
            f"{alias.col('device_id')} = {stmt.bind(key.device_id)}"
            f" AND {alias.col('metric_id')} = {metric_id}"
            f" AND {alias.col('metric')} = (SELECT name FROM metric WHERE id = {metric_id})"
            f" AND {alias.col('time')} >= {stmt.bind(key.start)}"
            f" AND {alias.col('time')} < {stmt.bind(key.end)}"
        )
    return f"{alias.col('id')} = {stmt.bind(entity_id)}"


def _conditions(query: Query, alias: Alias, stmt: Statement, parent: Resolver | None) -> list[str]:
    conditions = []
    if query.parent is not None:
        resolve = parent
        if resolve is None:
            row = query.parent.row
            types = SOURCES[query.parent.entity].columns

            def resolve(column: str) -> str:
                return f"{stmt.bind(row[column])}::{types[column].type}"

        conditions.append(
            JOINS[query.parent.entity, query.parent.relation.name](resolve, alias.col)
        )
    if query.entity_id is not None:
        conditions.append(_id_condition(query.entity, query.entity_id, alias, stmt))
    if query.filter is not None:
        conditions.append(render(query.filter, alias, stmt))
    return conditions


def _select(
    query: Query,
    stmt: Statement,
    *,
    parent: Resolver | None = None,
    extra: Callable[[Alias], list[str]] | None = None,
) -> tuple[str, list[bool]]:
    """Render the SELECT of one page; return it and whether each order key (`_k0`, …)
    descends.

    `parent` renders the parent's columns (default: its row's values, bound); `extra`
    adds conditions over the entity's alias.
    """
    alias = Alias(query.entity, stmt.prefix())
    conditions = _conditions(query, alias, stmt, parent)
    if extra is not None:
        conditions += extra(alias)
    keys = _order_keys(query, alias, stmt, _fixed(query))
    if query.after is not None:
        conditions.append(_after(keys, query.after, stmt))
    columns = [f"{alias.col(c)} AS {c}" for c in sorted(query.columns)]
    columns += [f"{k} AS _k{i}" for i, (k, _, _) in enumerate(keys)]
    order = ", ".join(f"_k{i}{' DESC' if d else ''}" for i, (_, d, _) in enumerate(keys))
    text = (
        f"SELECT {', '.join(columns)} FROM {alias.from_()}"
        + "".join(f" AND {c}" for c in conditions)
        + f" ORDER BY {order}"
    )
    if query.limit is not None:
        text += f" LIMIT {stmt.bind(query.limit + 1)}"
    if query.skip:
        text += f" OFFSET {stmt.bind(query.skip)}"
    return text, [descending for _, descending, _ in keys]


def _fetch(conn: psycopg.Connection, text: str, params: Mapping[str, Any]) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(text.encode(), params, binary=True)
        return cur.fetchall()


def _page(rows: list[Row], limit: int | None, arity: int) -> Page:
    more = limit is not None and len(rows) > limit
    if more:
        rows = rows[:limit]
    keys = [rows[-1][f"_k{i}"] for i in range(arity)] if rows else None
    for row in rows:
        for i in range(arity):
            del row[f"_k{i}"]
    return Page(rows, more, keys)


def select_page(conn: psycopg.Connection, *, scope: Scope, query: Query) -> Page:
    """Read one page of a collection (`limit` rows, and whether more follow), or the one
    entity of `entity_id`."""
    stmt = Statement(scope)
    if query.entity is E.OBSERVATION and query.parent is None and query.entity_id is None:
        text, arity = _observations_of_all(query, stmt)
    else:
        text, directions = _select(query, stmt)
        arity = len(directions)
    return _page(_fetch(conn, text, stmt.params), query.limit, arity)


_OBSERVATIONS = Relation("Observations", E.OBSERVATION, True)


def _observations_of_all(query: Query, stmt: Statement) -> tuple[str, int]:
    """Observations of every visible Datastream: Datastream by Datastream in id order, each
    one's readings by its own key, so that a page needs neither a sort of every reading nor
    a scan. Other orderings merge the first page of every Datastream."""
    ds = Alias(E.DATASTREAM, stmt.prefix())
    by_id = not query.orderby
    after = query.after
    lower = ""
    if by_id and after is not None:
        # Skip the Datastreams before the cursor's (its device and metric ids).
        lower = (
            f" AND ({ds.col('device_id')}, {ds.col('metric_id')})"
            f" >= ({stmt.bind(after[0])}, {stmt.bind(after[1])})"
        )
    datastreams = (
        f"SELECT {ds.col('device_id')} AS device_id, {ds.col('metric_id')} AS metric_id,"
        f" {ds.col('metric')} AS metric FROM {ds.from_()}{lower} ORDER BY 1, 2"
    )

    def bound(alias: Alias) -> list[str]:
        """A loose bound of the cursor on each Datastream's own key (the time)."""
        if after is None:
            return []
        time = alias.col("time")
        if by_id:
            start = (
                f"CASE WHEN x.device_id = {stmt.bind(after[0])} AND x.metric_id ="
                f" {stmt.bind(after[1])} THEN {stmt.bind(after[2])}::timestamptz"
                " ELSE '-infinity'::timestamptz END"
            )
            return [f"{time} > {start}"]
        # The rows of this Datastream at or after the cursor's own keys: those equal to
        # them may still follow it, by the Datastream ids that break the tie outside.
        keys = _order_keys(inner, alias, stmt, _fixed(inner))
        values = after[: len(keys)]
        same = " AND ".join(
            f"{k} IS NOT DISTINCT FROM {stmt.bind(v)}"
            for (k, _, _), v in zip(keys, values, strict=True)
        )
        return [f"({_after(keys, values, stmt)} OR ({same}))"]

    inner = Query(
        entity=E.OBSERVATION,
        columns=query.columns | {"time"},
        filter=query.filter,
        orderby=query.orderby,
        parent=Parent(E.DATASTREAM, {}, _OBSERVATIONS),
        # Per Datastream: the page, the rows skipped, and the cursor's own row (its keys
        # are let through, for the ties the Datastream ids break outside).
        limit=None
        if query.limit is None
        else query.limit + query.skip + (1 if after is not None and not by_id else 0),
    )
    text, directions = _select(inner, stmt, parent=lambda column: f"x.{column}", extra=bound)
    names = [f"o.{c}" for c in sorted(inner.columns)]
    if by_id:
        keys = [
            ("x.device_id", False, False),
            ("x.metric_id", False, False),
            ("o.time", False, False),
        ]
    else:
        last = query.orderby[-1].descending
        keys = [(f"o._k{i}", d, True) for i, d in enumerate(directions)]
        keys += [("x.device_id", last, False), ("x.metric_id", last, False)]
    conditions = [] if after is None else [_after(keys, after, stmt)]
    outer = (
        f"SELECT {', '.join(names)}, "
        + ", ".join(f"{k} AS _k{i}" for i, (k, _, _) in enumerate(keys))
        + f" FROM ({datastreams}) AS x CROSS JOIN LATERAL ({text}) AS o"
        + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
        + " ORDER BY "
        + ", ".join(f"{k}{' DESC' if d else ''}" for k, d, _ in keys)
    )
    if query.limit is not None:
        outer += f" LIMIT {stmt.bind(query.limit + 1)}"
    if query.skip:
        outer += f" OFFSET {stmt.bind(query.skip)}"
    return outer, len(keys)


def parent_columns(entity: EntityType, relation: str) -> set[str]:
    """The columns of an `entity` row that its navigation `relation` needs."""
    used: set[str] = set()

    def record(column: str) -> str:
        used.add(column)
        return "NULL"

    JOINS[entity, relation](record, lambda column: "NULL")
    return used


def select_related(
    conn: psycopg.Connection,
    *,
    scope: Scope,
    entity: EntityType,
    rows: Sequence[Row],
    query: Query,
) -> list[Page]:
    """Read the related entities of each of `rows` (of type `entity`) along
    `query.parent.relation`, a page each: one statement for them all."""
    assert query.parent is not None
    if not rows:
        return []
    stmt = Statement(scope)
    columns = sorted(parent_columns(entity, query.parent.relation.name))
    source = SOURCES[entity].columns
    arrays = [stmt.bind(list(range(len(rows)))) + "::int[]"] + [
        stmt.bind([row[c] for row in rows]) + f"::{source[c].type}[]" for c in columns
    ]
    text, directions = _select(query, stmt, parent=lambda column: f"pv.{column}")
    arity = len(directions)
    names = ", ".join(["_parent", *columns])
    order = ", ".join(
        ["pv._parent", *(f"e._k{i}{' DESC' if d else ''}" for i, d in enumerate(directions))]
    )
    outer = (
        f"SELECT pv._parent, e.* FROM unnest({', '.join(arrays)}) AS pv ({names})"
        f" CROSS JOIN LATERAL ({text}) AS e ORDER BY {order}"
    )
    grouped: list[list[Row]] = [[] for _ in rows]
    for row in _fetch(conn, outer, stmt.params):
        grouped[row.pop("_parent")].append(row)
    return [_page(group, query.limit, arity) for group in grouped]


def count_rows(
    conn: psycopg.Connection, *, scope: Scope, query: Query, cap: int | None = None
) -> int | None:
    """Count a collection exactly; with `cap`, None if it holds more than `cap`."""
    stmt = Statement(scope)
    alias = Alias(query.entity, stmt.prefix())
    conditions = _conditions(query, alias, stmt, None)
    text = f"SELECT 1 FROM {alias.from_()}" + "".join(f" AND {c}" for c in conditions)
    if cap is not None:
        text += f" LIMIT {stmt.bind(cap + 1)}"
    row = conn.execute(f"SELECT count(*) FROM ({text}) AS c".encode(), stmt.params).fetchone()
    assert row is not None
    count = int(row[0])
    return None if cap is not None and count > cap else count


def estimate_rows(conn: psycopg.Connection, *, scope: Scope, query: Query) -> int:
    """The planner's estimate of a collection's size: milliseconds, whatever its size."""
    stmt = Statement(scope)
    alias = Alias(query.entity, stmt.prefix())
    conditions = _conditions(query, alias, stmt, None)
    text = f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {alias.from_()}" + "".join(
        f" AND {c}" for c in conditions
    )
    row = conn.execute(text.encode(), stmt.params).fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    return int(plan[0]["Plan"]["Plan Rows"])


def count_observations_rolled_up(
    conn: psycopg.Connection,
    *,
    scope: Scope,
    device_id: int | None = None,
    metric: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> int:
    """Count readings from the rollups: exactly for one Datastream (marked hours are
    counted from `reading`); for all Datastreams `scope` shows, from the daily rollups
    of each city and dataset less the days of the devices whose series it hides, which
    miss the readings of the last refresher round."""
    if device_id is not None and metric is not None:
        lo = start if start is not None else observations.ORIGIN
        hi = end if end is not None else buckets.ceil_to(datetime.now(UTC), rollups.DAY)
        hi += rollups.DAY if end is None else timedelta(0)  # readings a little ahead
        hour_lo, hour_hi = buckets.ceil_to(lo, rollups.HOUR), buckets.floor_to(hi, rollups.HOUR)
        if hour_lo >= hour_hi:
            hour_lo = hour_hi = hi  # no whole hour: every reading from `reading`
        row = conn.execute(
            """
            WITH dirty AS (
                SELECT DISTINCT hour FROM rollup_dirty
                WHERE device_id = %(device)s AND hour >= %(hour_lo)s AND hour < %(hour_hi)s
            )
            SELECT
                (SELECT coalesce(sum(h.count), 0) FROM reading_hourly h
                 WHERE h.device_id = %(device)s AND h.metric = %(metric)s
                   AND h.bucket >= %(hour_lo)s AND h.bucket < %(hour_hi)s
                   AND NOT EXISTS (SELECT 1 FROM dirty x WHERE x.hour = h.bucket))
              + (SELECT count(*) FROM dirty x JOIN reading r
                   ON r.device_id = %(device)s AND r.metric = %(metric)s
                  AND r.time >= x.hour AND r.time < x.hour + interval '1 hour')
              + (SELECT count(*) FROM reading r
                 WHERE r.device_id = %(device)s AND r.metric = %(metric)s
                   AND ((r.time >= %(lo)s AND r.time < least(%(hour_lo)s, %(hi)s))
                        OR (r.time >= greatest(%(hour_hi)s, %(lo)s) AND r.time < %(hi)s)))
            """,
            {
                "device": device_id,
                "metric": metric,
                "lo": lo,
                "hi": hi,
                "hour_lo": hour_lo,
                "hour_hi": hour_hi,
            },
        ).fetchone()
        return int(row[0]) if row else 0
    # The rollups' days less those of the devices whose series are hidden (a city's days
    # are the sums of its devices' days), and the readings of the hours marked since the
    # refresher's last round (a late reading's hour is then counted twice until it runs:
    # an estimate).
    visible, shown = _VISIBLE.replace("@d", "d"), _SERIES_SHOWN.replace("@d", "d")
    row = conn.execute(
        f"""
        SELECT (SELECT coalesce(sum(count), 0) FROM reading_city_daily
                WHERE %(ds)s::int[] IS NULL OR dataset_id = ANY(%(ds)s::int[]))
             - (SELECT coalesce(sum(y.count), 0)
                FROM device d JOIN reading_daily y ON y.device_id = d.id
                WHERE {visible} AND NOT {shown})
             + (SELECT count(*)
                FROM (SELECT DISTINCT device_id, hour FROM rollup_dirty) AS x
                JOIN device d ON d.id = x.device_id
                JOIN reading r ON r.device_id = x.device_id
                 AND r.time >= x.hour AND r.time < x.hour + interval '1 hour'
                WHERE {visible} AND {shown})
        """.encode(),
        {
            "ds": list(scope.dataset_ids) if scope.dataset_ids is not None else None,
            "gr": privacy.granted_param(scope.granted),
        },
    ).fetchone()
    return int(row[0]) if row else 0


def ensure_ids(
    conn: psycopg.Connection, *, metrics: Iterable[str], profiles: Iterable[str]
) -> None:
    """Give an id to each metric and profile name that has none yet (no number is drawn for
    a name that has one), and to the metrics of the newest readings."""
    # Each new name takes the next number after the largest (no sequence: numbers drawn by
    # a transaction that rolls back would be lost, and there are only 99). A concurrent
    # writer that took the same number wins; the name gets one at the next call.
    conn.execute(
        """
        INSERT INTO metric (id, name)
        SELECT (SELECT coalesce(max(id), 0) FROM metric) + row_number() OVER (ORDER BY n), n
        FROM (SELECT unnest(%(metrics)s::text[]) UNION SELECT metric FROM reading_latest)
             AS v (n)
        WHERE NOT EXISTS (SELECT 1 FROM metric m WHERE m.name = v.n)
        ON CONFLICT DO NOTHING
        """,
        {"metrics": sorted(set(metrics))},
    )
    conn.execute(
        """
        INSERT INTO profile (name)
        SELECT n FROM unnest(%(profiles)s::text[]) AS v (n)
        WHERE NOT EXISTS (SELECT 1 FROM profile p WHERE p.name = v.n)
        ORDER BY n
        ON CONFLICT DO NOTHING
        """,
        {"profiles": sorted(set(profiles))},
    )


def set_limits(conn: psycopg.Connection, *, milliseconds: int) -> None:
    """Bound every statement of the current transaction to `milliseconds`, and have its
    times come back in UTC (rendering thousands of them skips a time zone conversion each)."""
    conn.execute(
        "SELECT set_config('statement_timeout', %s, true), set_config('TimeZone', 'UTC', true)",
        (f"{milliseconds}ms",),
    )


def encode_cursor(order: str, keys: Sequence[Any]) -> str:
    """An opaque cursor: the order keys of a page's last row, bound to its ordering."""
    values = [{"t": v.astimezone(UTC).isoformat()} if isinstance(v, datetime) else v for v in keys]
    digest = hashlib.sha256(order.encode()).hexdigest()[:12]
    raw = json.dumps([digest, values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(order: str, cursor: str) -> list[Any] | None:
    """The order keys in a cursor made for this ordering; None if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        digest, values = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if digest != hashlib.sha256(order.encode()).hexdigest()[:12] or not isinstance(values, list):
        return None
    out: list[Any] = []
    for v in values:
        if isinstance(v, dict):
            try:
                if "t" in v:
                    out.append(datetime.fromisoformat(v["t"]))
                elif "n" in v:
                    out.append(Decimal(v["n"]))
                else:
                    out.append(timedelta(seconds=float(v["d"])))
            except (KeyError, TypeError, ValueError, ArithmeticError):
                return None
        elif v is None or isinstance(v, int | float | str | bool):
            out.append(v)
        else:
            return None
    return out


def select_open_devices(conn: psycopg.Connection) -> dict[int, int]:
    """Return device id -> dataset id of the devices of open datasets whose Observations
    anyone may see: not personal devices (datahub/privacy.py)."""
    rows = conn.execute(
        "SELECT d.id, d.dataset_id FROM device d JOIN dataset ds ON ds.id = d.dataset_id"
        " WHERE ds.licence_class = 'open' AND coalesce(d.privacy, ds.privacy) <> 'personal'"
    ).fetchall()
    return {device_id: dataset_id for device_id, dataset_id in rows}


def select_metric_ids(conn: psycopg.Connection) -> dict[str, int]:
    """Return metric name -> id."""
    return {name: metric_id for metric_id, name in conn.execute("SELECT id, name FROM metric")}


def select_decoder_names(conn: psycopg.Connection, *, ids: Sequence[int]) -> dict[int, str]:
    """Return decoder id -> name of the given ids."""
    rows = conn.execute("SELECT id, name FROM decoder WHERE id = ANY(%s)", (list(ids),))
    return {decoder_id: name for decoder_id, name in rows}
