"""The OGC SensorThings API 1.1, read-only, at /sta/v1.1 (docs/sensorthings.md).

The same callers, keys, datasets, metering and licences as the REST API: what a caller
may not see does not exist for it, each Observation served counts as one observation of
its dataset (an aggregate point as `fairshare.aggregate_point_weight`), and the licences
of the datasets a response draws on come in `Link` headers. Errors are JSON with the
hub's `error` and `detail` and SensorThings' `code`, `type` and `message`.
"""

from __future__ import annotations

import inspect
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlencode

import fastapi
import orjson
import psycopg
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import Field
from pydantic_core import to_json
from starlette.applications import Starlette

from datahub.api.deps import (
    ANONYMOUS_TOO,
    Conn,
    Metered,
    MetricIndexDep,
    SettingsDep,
    ViewDep,
    WriteLender,
)
from datahub.api.licences import licences_of, link_licences
from datahub.api.metric_index import MetricIndex
from datahub.api.schemas import InModel, error_responses
from datahub.api.sensorthings import entities
from datahub.api.sensorthings.ast import Binary, Expand, Expr, Literal, Options, Prop
from datahub.api.sensorthings.model import RELATIONS, EntityType
from datahub.api.sensorthings.parser import Limits, OptionParser, QueryError
from datahub.api.sensorthings.paths import ResourcePath, parse_path
from datahub.config import Settings
from datahub.errors import BadRequest, NotFound
from datahub.privacy import Grid
from datahub.storage import buckets, readings, rollups
from datahub.storage import sensorthings as sta
from datahub.storage.buckets import AggregateFn, DeviceScope
from datahub.storage.sensorthings import Parent, Query, Row, Scope

PREFIX = "/sta/v1.1"
E = EntityType
# How often a process gives ids to metric and profile names that have none (new catalog
# entries, metrics first seen in readings); at its first request, and then at most this often.
ENSURE_IDS_S = 600.0
CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
]


class Rollup(StrEnum):
    """The hub's rollups a Datastream's Observations can be aggregated by."""

    HOUR = "1h"
    DAY = "1d"


class RollupFn(StrEnum):
    """How a rollup's bucket of readings becomes one value (storage.buckets.AggregateFn
    but `delta`, the REST API's for counters)."""

    AVG = "avg"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    LAST = "last"


_WIDTHS = {Rollup.HOUR: rollups.HOUR, Rollup.DAY: rollups.DAY}


class OptionsQuery(InModel):
    """The query options of a SensorThings request (OGC 18-088, 9.3) and the hub's own.

    Declared here, so that the OpenAPI document lists them and api/params.py refuses any
    other (422). What the schema cannot say (an option's syntax, a maximum from the
    settings) the parser checks, 400 naming what is wrong.
    """

    filter: str | None = Field(
        default=None,
        alias="$filter",
        description="a condition on the entities' properties, a subset of OData 4.01 "
        "(docs/sensorthings.md), e.g. `result gt 20 and phenomenonTime ge "
        "2024-05-01T00:00:00Z`",
    )
    orderby: str | None = Field(
        default=None,
        alias="$orderby",
        description="properties or expressions, each `asc` (default) or `desc`, "
        "comma-separated; ties are broken by `@iot.id`",
    )
    top: int | None = Field(
        default=None,
        alias="$top",
        ge=0,
        description="page size; default `sensorthings.top_default`, at most "
        "`sensorthings.top_max` (more is a 400)",
    )
    skip: int | None = Field(
        default=None,
        alias="$skip",
        ge=0,
        description="entities to skip, at most `sensorthings.skip_max` (more is a 400); "
        "deeper pages come from `@iot.nextLink`",
    )
    count: bool | None = Field(
        default=None, alias="$count", description="`true`: the collection's size as `@iot.count`"
    )
    select: str | None = Field(
        default=None,
        alias="$select",
        description="the properties and navigation properties to return, comma-separated; "
        "`id` is `@iot.id`",
    )
    expand: str | None = Field(
        default=None,
        alias="$expand",
        description="navigation properties to include, nested with `/` or with options in "
        "parentheses separated by `;`, e.g. `Datastreams($top=1;$expand=Observations)`",
    )
    skiptoken: str | None = Field(
        default=None,
        alias="$skiptoken",
        description="the cursor an `@iot.nextLink` carries, unchanged; anything else is a 400",
    )
    # Beyond the standard: the hub's rollups of one Datastream.
    aggregate: Rollup | None = Field(
        default=None,
        description="the Observations of one Datastream as hourly or daily aggregates",
    )
    aggregate_fn: RollupFn | None = Field(
        default=None,
        alias="aggregateFn",
        description="with `aggregate`: what a bucket's readings become (default `avg`)",
    )

    def given(self) -> dict[str, str]:
        """The options given, `$name -> text`, as the parser and `@iot.nextLink` take them."""
        return {
            name: ("true" if value else "false") if isinstance(value, bool) else str(value)
            for name, value in self.model_dump(by_alias=True, exclude_none=True).items()
        }


class StaRoute(APIRoute):
    """Renders the errors of this API and of its dependencies (a key, the rate limit, a
    query parameter) as the rest of the API does, with SensorThings' keys besides."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                render = _handler_of(request.app, exc)
                if render is None:
                    raise
                response = render(request, exc)
                if inspect.isawaitable(response):
                    response = await response
                return _with_sensorthings_keys(response)

        return route


def _handler_of(app: Starlette, exc: Exception) -> Callable[..., Any] | None:
    """The app's handler of `exc` (api/app.py), by its class or the nearest base; None for
    an unexpected error, left to the app (it logs it and answers 500)."""
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in app.exception_handlers:
            handler: Callable[..., Any] = app.exception_handlers[cls]
            return handler
    return None


def _with_sensorthings_keys(response: Response) -> Response:
    """The hub's error body with SensorThings' `code`, `type` and `message` added."""
    body = orjson.loads(bytes(response.body))
    body |= {"code": response.status_code, "type": "error", "message": body["detail"]}
    headers = {
        k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")
    }
    return Response(to_json(body), response.status_code, headers, media_type="application/json")


router = APIRouter(tags=["sensorthings"], route_class=StaRoute)
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/plain": {"schema": {"type": "string"}},
        },
        "description": "An entity, a collection (`value`, `@iot.nextLink`, `@iot.count`), a "
        "property, or a property's raw value (`/$value`, text/plain).",
    },
    # Rendered as ErrorOut with SensorThings' `code`, `type` and `message` besides.
    **error_responses(400, 401, 403, 404, 409, 422, 429, 503),
}


def service_root(request: Request, settings: Settings) -> str:
    """The absolute URL of /sta/v1.1, as clients reach it (`api.public_base_url`)."""
    base = settings.api.public_base_url or str(request.base_url)
    return base.rstrip("/") + PREFIX


@router.get(PREFIX, responses=_RESPONSES, openapi_extra=ANONYMOUS_TOO)
def landing_page(request: Request, settings: SettingsDep) -> Response:
    """List the entity sets and the conformance classes implemented."""
    root = service_root(request, settings)
    body = {
        "value": [{"name": e.plural, "url": f"{root}/{e.plural}"} for e in EntityType],
        "serverSettings": {"conformance": CONFORMANCE},
    }
    return Response(to_json(body), media_type="application/json")


@router.get(PREFIX + "/{path:path}", responses=_RESPONSES, openapi_extra=ANONYMOUS_TOO)
def read(
    path: str,
    query: Annotated[OptionsQuery, fastapi.Query()],
    request: Request,
    conn: Conn,
    lend_writer: WriteLender,
    settings: SettingsDep,
    catalog: MetricIndexDep,
    meter: Metered,
    view: ViewDep,
) -> Response:
    """Read entities by a SensorThings resource path, e.g. `Things`, `Datastreams(4217)`,
    `Datastreams(4217)/Observations`, `Observations(…)/result/$value`, `Things/$ref`.

    Query options: `$filter`, `$orderby`, `$top` (default `sensorthings.top_default`, at
    most `sensorthings.top_max`), `$skip` (at most `sensorthings.skip_max`), `$count`,
    `$select`, `$expand` with nested options; follow `@iot.nextLink` for the next page.
    Beyond the standard, `Datastreams(id)/Observations?aggregate=1h` (or `1d`, with
    `aggregateFn=avg|min|max|sum|count|last`) serves the hub's rollups of that series.
    400 for a malformed option or an unknown property, 404 for an unknown or invisible
    entity. Each Observation counts as one observation of its dataset.
    A caller without a grant for a dataset sees its private owners' and personal devices
    as docs/privacy.md says: Things by public id, private owners' Locations snapped to a
    grid, no Datastreams or Observations of personal devices.
    """
    if path in ("", "/"):
        return landing_page(request, settings)
    raw = query.given()
    ensured = getattr(request.app.state, "sensorthings_ids_at", None)
    now = time.monotonic()
    if ensured is None or now - ensured > ENSURE_IDS_S:
        # Names seen since get their ids: a write on the primary (never on a replica) in a
        # transaction of its own, committed whatever becomes of this request.
        with lend_writer() as writer:
            sta.ensure_ids(writer, metrics=catalog.metrics, profiles=catalog.profiles)
        request.app.state.sensorthings_ids_at = now
    reader = Reader(
        conn,
        settings,
        catalog,
        meter.caller.dataset_ids,
        service_root(request, settings),
        granted=meter.caller.granted_ids,
        grid=view.grid,
    )
    try:
        # One read-only transaction: its limits (statement time-out, UTC) hold for it alone.
        with conn.transaction():
            sta.set_limits(conn, milliseconds=settings.sensorthings.statement_timeout_ms)
            response = reader.respond(parse_path(path), raw, request)
            # Read before the charge, which commits the usage: after it, only rendering.
            licences = licences_of(conn, reader.datasets)
    except sta.SqlError as exc:
        raise BadRequest(str(exc)) from None
    except psycopg.errors.QueryCanceled:
        raise BadRequest(
            f"the query took longer than {settings.sensorthings.statement_timeout_ms} ms; "
            "narrow it, e.g. to one Datastream or a phenomenonTime range"
        ) from None
    meter.charge(reader.served)
    link_licences(response, licences)
    return response


# The SensorThings form of the catalog in use, made once per catalog (a reload makes a new
# MetricIndex): id -> (the catalog, its form).
_STA_CATALOG: dict[int, tuple[MetricIndex, sta.Catalog]] = {}


def sta_catalog(catalog: MetricIndex) -> sta.Catalog:
    """The device catalog as SensorThings statements take it."""
    kept = _STA_CATALOG.get(id(catalog))
    if kept is not None and kept[0] is catalog:
        return kept[1]
    made = _sta_catalog(catalog)
    _STA_CATALOG.clear()  # only the catalog in use is kept
    _STA_CATALOG[id(catalog)] = (catalog, made)
    return made


def _sta_catalog(catalog: MetricIndex) -> sta.Catalog:
    metrics = []
    for info in catalog.metrics.values():
        name, symbol, definition = entities.unit_of(info.unit)
        metrics.append((info.name, info.unit, name, symbol, definition, info.description))
    sensors = [
        (
            name,
            p.description,
            p.vendor,
            p.model,
            p.version or "",
            f"{name} decoder"
            + (f" version {p.version}" if p.version else "")
            + ": "
            + "; ".join(f"{m} ({kind}, scale {scale:g})" for m, kind, scale in p.mappings),
        )
        for name, p in sorted(catalog.profiles.items())
    ]
    pairs = [(p, m) for p, ms in catalog.profile_metrics.items() for m in ms]
    return sta.Catalog(pairs=pairs, metrics=metrics, sensors=sensors)


@dataclass
class Reader:
    """Answers one request: resolves its path, reads pages, expands, renders, counts what
    it served per dataset."""

    conn: psycopg.Connection
    settings: Settings
    catalog: MetricIndex
    dataset_ids: Sequence[int] | None
    root: str
    granted: frozenset[int] | None  # datahub/privacy.py
    grid: Grid
    served: Counter[int] = field(default_factory=Counter)
    datasets: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        section = self.settings.sensorthings
        base = self.root.removesuffix(PREFIX)
        self.scope = Scope(
            self.dataset_ids,
            sta_catalog(self.catalog),
            f"{base}/v1/metrics#",
            granted=self.granted,
            grid=self.grid,
        )
        self.limits = Limits(section.top_default, section.top_max, section.skip_max)
        self.context = entities.Context(self.root, entities.Resolution(self.catalog))

    # -- the request

    def respond(self, resource: ResourcePath, raw: dict[str, str], request: Request) -> Response:
        steps = resource.steps
        parent: Parent | None = None
        row: Row | None = None
        last = steps[-1]
        options = OptionParser(last.entity, self.limits).parse(raw)
        for i, step in enumerate(steps[:-1]):
            columns = {"id"} | sta.parent_columns(step.entity, steps[i + 1].via or "")
            if step.entity is E.DATASTREAM:  # what counts and aggregates of it need
                columns |= {"device_id", "metric", "dataset_id"}
            row = self.one(step.entity, columns, parent, step.entity_id)
            parent = Parent(step.entity, row, RELATIONS[step.entity][steps[i + 1].via or ""])
        if "aggregate" in raw or "aggregateFn" in raw:
            return self.aggregate(parent, last.entity, last.single, options, raw, request)
        if last.single:
            return self.single(resource, parent, options)
        return self.collection(resource, parent, options, raw, request)

    def one(
        self, entity: EntityType, columns: set[str], parent: Parent | None, entity_id: int | None
    ) -> Row:
        page = sta.select_page(
            self.conn,
            scope=self.scope,
            query=Query(entity, frozenset(columns), parent=parent, entity_id=entity_id, limit=1),
        )
        if not page.rows:
            what = f"{entity} {entity_id}" if entity_id is not None else f"{entity}"
            where = f" of {parent.entity} {parent.row['id']}" if parent is not None else ""
            raise NotFound(f"no {what}{where}")
        return page.rows[0]

    def single(self, resource: ResourcePath, parent: Parent | None, options: Options) -> Response:
        step = resource.steps[-1]
        if resource.property is not None:
            columns = entities.columns_for(step.entity, [resource.property])
            row = self.one(step.entity, columns, parent, step.entity_id)
            self.note(step.entity, [row])
            link = entities.self_link(self.root, step.entity, row["id"])
            body = entities.entity_json(step.entity, row, self.context, [resource.property], link)
            value = body.get(resource.property)
            if resource.value:
                if value is None:
                    return Response(status_code=204)
                return Response(entities.value_text(value), media_type="text/plain")
            return _json({resource.property: value})
        if resource.ref:
            row = self.one(step.entity, {"id"}, parent, step.entity_id)
            return _json({"@iot.selfLink": entities.self_link(self.root, step.entity, row["id"])})
        columns = entities.columns_for(step.entity, options.select) | self.expand_columns(
            step.entity, options.expand
        )
        row = self.one(step.entity, columns, parent, step.entity_id)
        body = self.render(step.entity, [row], options)[0]
        return _json(body)

    def collection(
        self,
        resource: ResourcePath,
        parent: Parent | None,
        options: Options,
        raw: Mapping[str, str],
        request: Request,
    ) -> Response:
        entity = resource.steps[-1].entity
        top = options.top if options.top is not None else self.limits.top_default
        order_text = f"{entity}|{raw.get('$orderby', '')}"
        after = None
        if "$skiptoken" in raw:
            after = sta.decode_cursor(order_text, raw["$skiptoken"])
            if after is None:
                raise QueryError("$skiptoken is not one of this collection's @iot.nextLink")
        columns = (
            {"id"}
            if resource.ref
            else entities.columns_for(entity, options.select)
            | self.expand_columns(entity, options.expand)
        )
        query = Query(
            entity,
            frozenset(columns),
            filter=options.filter,
            orderby=options.orderby,
            parent=parent,
            after=after,
            skip=0 if after is not None else options.skip,
            limit=top,
        )
        body: dict[str, Any] = {}
        if options.count:
            body["@iot.count"] = self.count(query)
        page = sta.select_page(self.conn, scope=self.scope, query=query)
        if resource.ref:
            body["value"] = [
                {"@iot.selfLink": entities.self_link(self.root, entity, r["id"])} for r in page.rows
            ]
        else:
            body["value"] = self.render(entity, page.rows, options)
        if page.more and page.keys is not None:
            cursor = sta.encode_cursor(order_text, page.keys)
            params = {k: v for k, v in raw.items() if k not in ("$skip", "$skiptoken")}
            params["$skiptoken"] = cursor
            body["@iot.nextLink"] = f"{self.root}/{request.path_params['path']}?" + urlencode(
                params
            )
        return _json(body)

    def count(self, query: Query) -> int:
        """The size of a collection: exact, or estimated where that would be slow."""
        if query.entity is not E.OBSERVATION:
            exact = sta.count_rows(self.conn, scope=self.scope, query=query)
            assert exact is not None
            return exact
        parent = query.parent
        bounds = _time_bounds(query.filter)
        if parent is not None and parent.entity is E.DATASTREAM and bounds is not None:
            return sta.count_observations_rolled_up(
                self.conn,
                scope=self.scope,
                device_id=parent.row["device_id"],
                metric=parent.row["metric"],
                start=bounds[0],
                end=bounds[1],
            )
        if parent is None and query.filter is None:
            return sta.count_observations_rolled_up(self.conn, scope=self.scope)
        cap = self.settings.sensorthings.count_exact_max
        counted = sta.count_rows(self.conn, scope=self.scope, query=query, cap=cap)
        if counted is not None:
            return counted
        return max(cap + 1, sta.estimate_rows(self.conn, scope=self.scope, query=query))

    # -- rendering and expansion

    def note(self, entity: EntityType, rows: Sequence[Row]) -> None:
        """Count the Observations served, and the datasets drawn on (for the licences)."""
        self.datasets |= entities.dataset_ids(entity, rows)
        if entity is E.OBSERVATION:
            self.served.update(row["dataset_id"] for row in rows)

    def expand_columns(self, entity: EntityType, expand: Sequence[Expand]) -> set[str]:
        needed: set[str] = set()
        for item in expand:
            needed |= sta.parent_columns(entity, item.relation.name)
        return needed

    def render(self, entity: EntityType, rows: list[Row], options: Options) -> list[dict[str, Any]]:
        self.note(entity, rows)
        bodies = [
            entities.entity_json(
                entity,
                row,
                self.context,
                options.select,
                entities.self_link(self.root, entity, row["id"]),
            )
            for row in rows
        ]
        for item in options.expand:
            self.expand(entity, rows, bodies, item)
        return bodies

    def expand(
        self, entity: EntityType, rows: list[Row], bodies: list[dict[str, Any]], item: Expand
    ) -> None:
        relation, nested = item.relation, item.options
        target = relation.target
        top = nested.top if nested.top is not None else self.limits.top_default
        columns = entities.columns_for(target, nested.select) | self.expand_columns(
            target, nested.expand
        )
        query = Query(
            target,
            frozenset(columns),
            filter=nested.filter,
            orderby=nested.orderby,
            parent=Parent(entity, {}, relation),
            skip=nested.skip,
            limit=top if relation.many else 1,
        )
        pages = sta.select_related(
            self.conn, scope=self.scope, entity=entity, rows=rows, query=query
        )
        for row, body, page in zip(rows, bodies, pages, strict=True):
            rendered = self.render(target, page.rows, nested)
            name = relation.name
            if not relation.many:
                body[name] = rendered[0] if rendered else None
                continue
            body[name] = rendered
            if nested.count:
                body[f"{name}@iot.count"] = self.count(
                    Query(
                        target,
                        frozenset({"id"}),
                        filter=nested.filter,
                        parent=Parent(entity, row, relation),
                    )
                )
            if page.more and page.keys is not None:
                order_text = f"{target}|{_option(item.raw, '$orderby') or ''}"
                params = {
                    k: v
                    for k, v in (_split(item.raw)).items()
                    if k not in ("$skip", "$skiptoken", "$expand")
                }
                params["$skiptoken"] = sta.encode_cursor(order_text, page.keys)
                link = entities.self_link(self.root, entity, row["id"])
                body[f"{name}@iot.nextLink"] = f"{link}/{name}?" + urlencode(params)

    # -- the hub's rollups

    def aggregate(
        self,
        parent: Parent | None,
        entity: EntityType,
        single: bool,
        options: Options,
        raw: Mapping[str, str],
        request: Request,
    ) -> Response:
        if (
            parent is None
            or parent.entity is not E.DATASTREAM
            or entity is not E.OBSERVATION
            or single
        ):
            raise QueryError("aggregate applies to the Observations of one Datastream")
        # Their values are OptionsQuery's: checked before the request gets here.
        width = _WIDTHS[Rollup(raw.get("aggregate", Rollup.HOUR))]
        fn = AggregateFn(raw.get("aggregateFn", RollupFn.AVG))
        bounds = _time_bounds(options.filter)
        if bounds is None or options.expand or options.select:
            raise QueryError(
                "with aggregate, $filter may only bound phenomenonTime, and $select and "
                "$expand do not apply"
            )
        descending = False
        if options.orderby:
            first = options.orderby[0]
            if len(options.orderby) > 1 or not (
                isinstance(first.expr, Prop) and first.expr.name == "phenomenonTime"
            ):
                raise QueryError("with aggregate, $orderby may only be phenomenonTime asc|desc")
            descending = first.descending
        now = datetime.now(UTC)
        end = bounds[1] or buckets.ceil_to(now, width)
        start = bounds[0] or end - (
            timedelta(days=1) if width == rollups.HOUR else timedelta(days=31)
        )
        count = (end - start) / width
        limit = self.settings.api.max_buckets
        if count > limit:
            raise QueryError(
                f"{start.isoformat()} to {end.isoformat()} in {raw.get('aggregate', '1h')} "
                f"buckets is {count:.0f} buckets; at most {limit} (narrow phenomenonTime)"
            )
        rows = readings.select_buckets(
            self.conn,
            metric=parent.row["metric"],
            start=start,
            end=end,
            width=width,
            fn=fn,
            scope=DeviceScope(
                parent.row["device_id"],
                dataset_ids=None if self.dataset_ids is None else tuple(self.dataset_ids),
            ),
        )
        if descending:
            rows.reverse()
        top = options.top if options.top is not None else self.limits.top_default
        after = raw.get("$skiptoken")
        if after is not None:
            try:
                mark = datetime.fromisoformat(after)
            except ValueError:
                raise QueryError(
                    "$skiptoken is not one of this collection's @iot.nextLink"
                ) from None
            rows = [r for r in rows if (r.time < mark if descending else r.time > mark)]
        else:
            rows = rows[options.skip :]
        page, more = rows[:top], len(rows) > top
        weight = self.settings.fairshare.aggregate_point_weight
        dataset_id = parent.row["dataset_id"]
        if page:
            self.served[dataset_id] += len(page) * weight
            self.datasets.add(dataset_id)
        label = raw.get("aggregate", "1h")
        # Thousands of points, rendered with as little work each as may be: each time once
        # (a bucket's end is the next one's start). An aggregate is computed when asked
        # for: it has no result time of its own.
        stops = [r.time + width for r in page]
        texts = {t: _iso(t) for t in {*(r.time for r in page), *stops}}
        name = fn.value
        values = [
            {
                "phenomenonTime": texts[r.time] + "/" + texts[stop],
                "resultTime": None,
                "result": r.value,
                "parameters": {"aggregate": label, "fn": name, "count": r.count},
            }
            for r, stop in zip(page, stops, strict=True)
        ]
        body: dict[str, Any] = {"value": values}
        if options.count:
            body = {"@iot.count": len(rows) + (options.skip if after is None else 0), **body}
        if more:
            params = {k: v for k, v in raw.items() if k not in ("$skip", "$skiptoken")}
            params["$skiptoken"] = page[-1].time.isoformat()
            body["@iot.nextLink"] = f"{self.root}/{request.path_params['path']}?" + urlencode(
                params
            )
        return _json(body)


def _iso(value: datetime) -> str:
    # The request's session is in UTC (storage.sensorthings.set_limits): no conversion.
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.isoformat().removesuffix("+00:00") + "Z"


def _json(body: Mapping[str, Any]) -> Response:
    return Response(to_json(body, inf_nan_mode="null"), media_type="application/json")


def _split(raw: str) -> dict[str, str]:
    """`$top=3;$orderby=x` -> {"$top": "3", "$orderby": "x"} (no nested parentheses)."""
    out: dict[str, str] = {}
    depth, start = 0, 0
    for at, char in enumerate(raw + ";"):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ";" and depth == 0:
            name, _, value = raw[start:at].partition("=")
            if name.strip():
                out[name.strip()] = value
            start = at + 1
    return out


def _option(raw: str, name: str) -> str | None:
    return _split(raw).get(name)


def _time_bounds(expr: Expr | None) -> tuple[datetime | None, datetime | None] | None:
    """[start, end) of a filter that only bounds phenomenonTime (or resultTime) of
    Observations by literal times, AND-ed; (None, None) for no filter; None otherwise."""
    if expr is None:
        return None, None
    if isinstance(expr, Binary) and expr.op == "and":
        left, right = _time_bounds(expr.left), _time_bounds(expr.right)
        if left is None or right is None:
            return None
        starts = [t for t in (left[0], right[0]) if t is not None]
        ends = [t for t in (left[1], right[1]) if t is not None]
        return (max(starts) if starts else None, min(ends) if ends else None)
    if not isinstance(expr, Binary) or expr.op not in ("gt", "ge", "lt", "le", "eq"):
        return None
    prop, literal, op = expr.left, expr.right, expr.op
    if isinstance(prop, Literal):
        prop, literal = literal, prop
        op = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge", "eq": "eq"}[op]
    if not (
        isinstance(prop, Prop)
        and not prop.hops
        and prop.entity is E.OBSERVATION
        and prop.name in ("phenomenonTime", "resultTime")
        and isinstance(literal, Literal)
        and isinstance(literal.value, datetime)
    ):
        return None
    tick = timedelta(microseconds=1)
    t = literal.value
    return {
        "ge": (t, None),
        "gt": (t + tick, None),
        "lt": (None, t),
        "le": (None, t + tick),
        "eq": (t, t + tick),
    }[op]
