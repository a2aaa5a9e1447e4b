"""Response rendering beyond JSON: content negotiation, CSV bodies, the `Link` header."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from fastapi import Request, Response
from pydantic_core import to_json

from datahub.api.query import OutputFormat, format_time
from datahub.config import Settings

CSV_MEDIA_TYPE = "text/csv"

Cell = str | float | int | datetime | None


def wants_csv(request: Request, fmt: OutputFormat | None) -> bool:
    """Tell whether to answer in CSV: `format` decides, else the Accept header's first match."""
    if fmt is not None:
        return fmt is OutputFormat.CSV
    for media_range in request.headers.get("accept", "").split(","):
        media_type = media_range.split(";", 1)[0].strip().lower()
        if media_type == CSV_MEDIA_TYPE:
            return True
        if media_type == "application/json":
            return False
    return False


def negotiate(accept: str | None, offered: Sequence[str]) -> str | None:
    """Pick the media type of `offered` that an Accept header prefers (RFC 9110 12.5.1).

    The most specific range that matches a type gives its weight; among equal weights the
    earlier offered type wins. No header, or one that names nothing: the first offered.
    None when every offered type is refused (weight 0) or matches no range.
    """
    if not accept or not accept.strip():
        return offered[0]
    ranges: list[tuple[str, float]] = []
    for item in accept.split(","):
        media_range, *params = (part.strip() for part in item.split(";"))
        if not media_range:
            continue
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        ranges.append((media_range.lower(), weight))
    best: tuple[float, str] | None = None
    for media_type in offered:
        kind = media_type.split("/", 1)[0]
        matches = [
            (2 if r == media_type else 1 if r == f"{kind}/*" else 0, w)
            for r, w in ranges
            if r in (media_type, f"{kind}/*", "*/*")
        ]
        if not matches:
            continue
        weight = max(matches)[1]
        if weight > 0 and (best is None or weight > best[0]):
            best = (weight, media_type)
    return best[1] if best is not None else None


def json_response(body: Mapping[str, Any]) -> Response:
    """Render a body built in a response model's shape as JSON, byte for byte as FastAPI
    renders the model itself.

    For bodies of thousands of items, where a model per item costs more than the query:
    pydantic's own serializer writes the plain values (times must be UTC; they render
    as RFC 3339 with a `Z`) and any models among them, non-finite floats as null.
    """
    return Response(
        to_json(body, by_alias=True, inf_nan_mode="null"), media_type="application/json"
    )


def csv_response(
    header: Sequence[str], rows: Iterable[Sequence[Cell]], *, next_url: str | None = None
) -> Response:
    """Render rows as CSV with a header row; times as RFC 3339 UTC, None as empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([_cell(value) for value in row] for row in rows)
    response = Response(buffer.getvalue(), media_type=f"{CSV_MEDIA_TYPE}; charset=utf-8")
    set_next_link(response, next_url)
    return response


def next_page_url(request: Request, settings: Settings, cursor: str | None) -> str | None:
    """Return the URL of the next page: this request's URL with `cursor` replaced."""
    if cursor is None:
        return None
    url = request.url.include_query_params(cursor=cursor)
    base = settings.api.public_base_url
    if base is None:
        return str(url)
    return base.rstrip("/") + url.path + (f"?{url.query}" if url.query else "")


def set_next_link(response: Response, next_url: str | None) -> None:
    """Point to the next page with an RFC 8288 `Link: <url>; rel="next"` header."""
    if next_url is not None:
        response.headers["Link"] = f'<{next_url}>; rel="next"'


def _cell(value: Cell) -> str | float | int:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_time(value)
    return value
