"""The open-data catalogue: DCAT-AP.de metadata of the open datasets, for portals to harvest."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import psycopg
from fastapi import APIRouter, Query, Request, Response

from datahub.api.deps import ANONYMOUS_TOO, Caller, Conn, SettingsDep
from datahub.api.render import negotiate
from datahub.api.schemas import error_responses
from datahub.errors import NotAcceptable
from datahub.opendata import dcat
from datahub.opendata.dcat import RdfFormat
from datahub.storage import bulk_files, datasets
from datahub.storage import dcat as dcat_storage

router = APIRouter(tags=["open data"])

# Where the SensorThings API is served, once it is.
SENSORTHINGS_PATH = "/sta/v1.1"
_MEDIA_TYPES = [f.media_type for f in RdfFormat]


@router.get(
    dcat.CATALOGUE_PATH,
    responses={
        200: {
            # JSON-LD is a JSON document; Turtle and RDF/XML are text.
            "content": {
                t: {"schema": {"type": "object" if t.endswith("json") else "string"}}
                for t in _MEDIA_TYPES
            },
            "description": "the catalogue in the serialisation `format` names, else the one "
            "the Accept header prefers (Turtle by default)",
        },
        **error_responses(401, 406, 422, 429, 503),
    },
    openapi_extra=ANONYMOUS_TOO,
)
def get_catalogue(
    request: Request,
    conn: Conn,
    settings: SettingsDep,
    caller: Caller,
    format: Annotated[
        RdfFormat | None,
        Query(description="ttl (Turtle), jsonld (JSON-LD) or rdf (RDF/XML); overrides Accept"),
    ] = None,
) -> Response:
    """The DCAT-AP.de 2.0 catalogue of the open datasets, for GovData and the cities' portals.

    Lists every open dataset, and each restricted or commercial one its supplier lets be
    listed (with `dct:accessRights` saying how to get access): title and description in
    German and English, keywords, EU data themes, spatial and temporal coverage, contact,
    publisher (the supplier), and a distribution per way to get it (this API, the bulk
    files, the SensorThings API). The same for every caller; it serves no observations.
    406 when the Accept header takes none of the three serialisations.
    """
    if format is not None:
        chosen = format
    else:
        media_type = negotiate(request.headers.get("accept"), _MEDIA_TYPES)
        if media_type is None:
            raise NotAcceptable(
                f"the catalogue is served as {', '.join(_MEDIA_TYPES)}; accept one of them, "
                "or pass format=ttl, jsonld or rdf"
            )
        chosen = next(f for f in RdfFormat if f.media_type == media_type)
    ids = dcat_storage.select_listed_ids(conn)
    facts = dcat_storage.select_facts(conn, dataset_ids=ids)
    records = {r.id: r for r in datasets.list_datasets(conn) if r.id in facts}
    files = _published_files(conn, ids)
    entries = [dcat.Entry(dataset=records[i], facts=facts[i], files=files.get(i, ())) for i in ids]
    graph = dcat.build_catalogue(
        entries,
        settings=settings.opendata,
        base_url=settings.api.public_base_url or str(request.base_url),
        sensorthings=_sensorthings(request, settings.opendata.sensorthings),
        now=datetime.now(UTC),
    )
    return Response(
        dcat.serialize(graph, chosen),
        media_type=f"{chosen.media_type}; charset=utf-8",
        headers={"Vary": "Accept"},
    )


def _published_files(
    conn: psycopg.Connection, dataset_ids: list[int]
) -> dict[int, list[bulk_files.BulkFile]]:
    """Each dataset's month files, and the day files of the months without one yet."""
    by_dataset: dict[int, list[bulk_files.BulkFile]] = {}
    every = bulk_files.list_files(conn, dataset_ids=dataset_ids)
    months = {(f.dataset_id, f.period) for f in every if f.is_month}
    for f in every:
        if f.is_month or (f.dataset_id, f.period[:7]) not in months:
            by_dataset.setdefault(f.dataset_id, []).append(f)
    return by_dataset


def _sensorthings(request: Request, setting: bool | None) -> bool:
    """Whether to list a SensorThings distribution: as set, or whether the app serves it."""
    if setting is not None:
        return setting
    return any(
        getattr(route, "path", "").startswith(SENSORTHINGS_PATH) for route in request.app.routes
    )
