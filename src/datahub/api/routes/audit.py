"""The audit log: every administrative change, in chain order, for administrators and the
ombudsman (docs/fair-share.md says how to verify the chain with a tool of one's own)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from datahub import audit
from datahub.api.admin_schemas import (
    AuditEntryOut,
    AuditListOut,
    AuditQuery,
    AuditVerdictOut,
    entry_out,
)
from datahub.api.deps import Conn, Overseer
from datahub.api.schemas import error_responses
from datahub.errors import NotFound
from datahub.storage import audit as log

router = APIRouter(prefix="/v1/admin/audit", tags=["admin"])

_ERRORS = error_responses(400, 401, 403, 422, 429, 503)


@router.get("", response_model=AuditListOut, responses=_ERRORS)
def list_entries(
    params: Annotated[AuditQuery, Query()], conn: Conn, caller: Overseer
) -> AuditListOut:
    """List audit entries in chain order, after `after`, filtered by action, target, actor."""
    rows = log.list_entries(
        conn,
        after=params.after,
        limit=params.limit + 1,
        action=params.action,
        target=params.target,
        actor=params.actor,
    )
    page = rows[: params.limit]
    return AuditListOut(
        items=[entry_out(e) for e in page],
        next_after=page[-1].seq if len(rows) > params.limit else None,
    )


@router.get("/verify", response_model=AuditVerdictOut, responses=_ERRORS)
def verify(conn: Conn, caller: Overseer) -> AuditVerdictOut:
    """Walk the whole chain and report the first link that does not hold, if any."""
    verdict = audit.verify(log.iterate_entries(conn))
    return AuditVerdictOut(
        intact=verdict.intact,
        entries=verdict.entries,
        head_seq=verdict.head_seq,
        head_hash=verdict.head_hash.hex(),
        broken_at=verdict.broken_at,
        reason=verdict.reason,
    )


@router.get(
    "/{seq}", response_model=AuditEntryOut, responses=error_responses(401, 403, 404, 422, 429, 503)
)
def get_entry(seq: int, conn: Conn, caller: Overseer) -> AuditEntryOut:
    """Show one audit entry by its seq."""
    entry = log.get_entry(conn, seq=seq)
    if entry is None:
        raise NotFound(f"no audit entry {seq}")
    return entry_out(entry)
