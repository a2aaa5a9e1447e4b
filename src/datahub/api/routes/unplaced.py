"""What the ingest could not place (admin scope): unknown DevEUIs, decode failures per
profile, and dead letters with their original bytes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from datahub.api import ops_schemas as out
from datahub.api.deps import Conn, Overseer
from datahub.api.query import decode_device_cursor, encode_device_cursor
from datahub.api.schemas import error_responses
from datahub.errors import NotFound
from datahub.storage import dead_letters, unplaced

router = APIRouter(prefix="/v1/admin", tags=["admin"])

_ERRORS = error_responses(400, 401, 403, 422, 429, 503)


@router.get("/unknown-devices", response_model=out.UnknownDeviceListOut, responses=_ERRORS)
def list_unknown_devices(
    params: Annotated[out.UnknownDeviceQuery, Query()], conn: Conn, caller: Overseer
) -> out.UnknownDeviceListOut:
    """List the DevEUIs heard without being registered, by DevEUI: how many uplinks, first
    and last seen, source, city, the newest payload and the gateways that heard them.

    Registering one keeps its uplinks: `datahub redecode --device DEV_EUI --since FIRST_SEEN`
    decodes them (`datahub devices import` offers it).
    """
    after = decode_device_cursor(params.cursor) if params.cursor else None
    rows = unplaced.list_unknown_devices(
        conn,
        since=params.since,
        city=params.city,
        source=params.source,
        after=after,
        limit=params.limit + 1,
    )
    page = rows[: params.limit]
    more = len(rows) > params.limit
    return out.UnknownDeviceListOut(
        items=[out.unknown_device_out(r) for r in page],
        next_cursor=encode_device_cursor(page[-1].dev_eui) if more else None,
    )


@router.get("/decode-failures", response_model=out.DecodeFailureListOut, responses=_ERRORS)
def list_decode_failures(
    params: Annotated[out.DecodeFailureQuery, Query()], conn: Conn, caller: Overseer
) -> out.DecodeFailureListOut:
    """Count the uplinks of registered devices that gave no readings, per profile: `failed`
    (the decoder refused the payload) and `no_decoder` (the metric_index lacks the profile)."""
    rows = unplaced.list_decode_failures(conn, since=params.since, profile=params.profile)
    return out.DecodeFailureListOut(items=[out.decode_failure_out(r) for r in rows])


@router.get("/dead-letters", response_model=out.DeadLetterListOut, responses=_ERRORS)
def list_dead_letters(
    params: Annotated[out.DeadLetterQuery, Query()], conn: Conn, caller: Overseer
) -> out.DeadLetterListOut:
    """List dead letters newest first: stage, reason, source, time; filter and page."""
    before = out.parse_id_cursor(params.cursor)
    rows = dead_letters.list_dead_letters(
        conn,
        stage=params.stage,
        reason=params.reason,
        source=params.source,
        since=params.since,
        until=params.until,
        before=before,
        limit=params.limit + 1,
    )
    page = rows[: params.limit]
    return out.DeadLetterListOut(
        items=[out.dead_letter_out(r) for r in page],
        next_cursor=out.id_cursor(page[-1].id) if len(rows) > params.limit else None,
    )


@router.get(
    "/dead-letters/{letter_id}",
    response_model=out.DeadLetterBodyOut,
    responses=error_responses(401, 403, 404, 422, 429, 503),
)
def get_dead_letter(letter_id: int, conn: Conn, caller: Overseer) -> out.DeadLetterBodyOut:
    """Show one dead letter with its original bytes: hex, base64, and as text when UTF-8."""
    row = dead_letters.get_dead_letter(conn, letter_id=letter_id)
    if row is None:
        raise NotFound(f"no dead letter {letter_id}")
    return out.dead_letter_body_out(row)
