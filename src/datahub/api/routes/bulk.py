"""Bulk files: every reading of an open dataset per day and per month, gzipped CSV.

The files are written by `datahub opendata bulk` (datahub.opendata.bulk) into
`opendata.bulk_dir`; this module lists and serves them. A download is anonymous
public-interest use, whoever asks: it is metered as such, one observation per row.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from datahub.api.deps import ANONYMOUS_TOO, Caller, Conn, PublicMetered, SettingsDep
from datahub.api.opendata_schemas import BulkFileListOut, BulkFileOut, BulkQuery, DatasetSlug
from datahub.api.schemas import error_responses
from datahub.errors import NotFound
from datahub.opendata import bulk
from datahub.storage import access, bulk_files

log = logging.getLogger(__name__)

router = APIRouter(tags=["open data"])

_FILE_NAME = re.compile(r"^(\d{4}-\d{2}(?:-\d{2})?)\.csv\.gz$")
_CHUNK = 64 * 1024
BULK_MEDIA_TYPE = "application/gzip"


@router.get(
    "/v1/bulk",
    response_model=BulkFileListOut,
    responses=error_responses(400, 401, 422, 429, 503),
    openapi_extra=ANONYMOUS_TOO,
)
def list_bulk_files(
    params: Annotated[BulkQuery, Query()],
    request: Request,
    conn: Conn,
    settings: SettingsDep,
    caller: Caller,
) -> BulkFileListOut:
    """List the bulk files of the open datasets, by dataset, then period.

    One gzipped CSV per UTC day and per month, with its row count and SHA-256; a late
    reading makes a new version of its day's (and month's) file. Listing serves no
    observations and is not metered; a download is.
    """
    ids = list(access.select_open_datasets(conn))
    if params.dataset is not None:
        found = access.dataset_id(conn, slug=params.dataset)
        ids = [found] if found in ids else []
    files = bulk_files.list_files(
        conn,
        dataset_ids=ids,
        months=None if params.period is None else params.period == "month",
        start=params.start,
        end=params.end,
    )
    base = settings.api.public_base_url or str(request.base_url)
    return BulkFileListOut(
        items=[
            BulkFileOut(
                dataset=f.dataset_slug,
                period=f.period,
                start=f.period_start,
                end=f.period_end,
                url=bulk.file_url(base, f.dataset_slug, f.period),
                rows=f.rows,
                bytes=f.bytes,
                sha256=f.sha256,
                version=f.version,
                written_at=f.written_at,
            )
            for f in files
        ]
    )


@router.get(
    "/v1/bulk/{dataset}/{name}",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {BULK_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
            "description": "the file: gzipped CSV (UTF-8, a header row, one reading per row)",
        },
        304: {"description": "the file is the one the If-None-Match ETag names"},
        **error_responses(401, 404, 422, 429, 503),
    },
    openapi_extra=ANONYMOUS_TOO,
)
def download_bulk_file(
    dataset: Annotated[DatasetSlug, PathParam()],
    name: Annotated[str, PathParam(description="`2026-12-01.csv.gz` (a day) or `2026-12.csv.gz`")],
    request: Request,
    conn: Conn,
    settings: SettingsDep,
    meter: PublicMetered,
) -> Response:
    """Download a bulk file of an open dataset.

    Anonymous public-interest use whoever asks (an API key is not needed and not charged):
    metered to the dataset as one observation per row. The ETag is the file's SHA-256; a
    request whose If-None-Match names it gets a 304 and is not metered. No ranges: the
    whole file or nothing. 404 for a file that does not exist or a dataset that is not open.
    """
    match = _FILE_NAME.fullmatch(name)
    found = bulk_files.get_file(conn, dataset_slug=dataset, period=match[1]) if match else None
    directory = settings.opendata.bulk_dir
    if (
        found is None
        or directory is None
        or found.dataset_id not in access.select_open_datasets(conn)
    ):
        raise NotFound(f"no bulk file {name!r} of an open dataset {dataset!r}")
    etag = f'"{found.sha256}"'
    headers = {"ETag": etag, "Cache-Control": "public, max-age=3600", "Accept-Ranges": "none"}
    if etag in _etags(request.headers.get("if-none-match")):
        return Response(status_code=304, headers=headers)
    try:
        handle = (Path(directory) / found.name).open("rb")
    except FileNotFoundError:
        raise NotFound(
            f"the bulk file {name!r} of {dataset!r} is missing; it is rewritten"
        ) from None
    try:
        meter.charge({found.dataset_id: found.rows})
    except BaseException:
        handle.close()
        raise
    headers |= {
        "Content-Length": str(found.bytes),
        "Content-Disposition": f'attachment; filename="{dataset}_{found.period}.csv.gz"',
    }
    return StreamingResponse(_chunks(handle), media_type=BULK_MEDIA_TYPE, headers=headers)


def _etags(header: str | None) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in (header or "").split(",") if tag.strip()}


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(_CHUNK):
            yield chunk
