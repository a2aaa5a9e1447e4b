"""The published tariffs: what each dataset costs per purpose, and what free use is worth."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from datahub.api.admin_schemas import TariffListOut, TariffQuery, tariff_out
from datahub.api.deps import ANONYMOUS_TOO, Conn
from datahub.api.schemas import error_responses
from datahub.fairshare import admin

router = APIRouter(tags=["fair share"])


@router.get(
    "/v1/fairshare/tariffs",
    response_model=TariffListOut,
    responses=error_responses(401, 404, 422, 429, 503),
    openapi_extra=ANONYMOUS_TOO,
)
def list_tariffs(params: Annotated[TariffQuery, Query()], conn: Conn) -> TariffListOut:
    """List every tariff version of every dataset; anyone may read them, without a key.

    Prices are integer cents per million observations; `shadow_cents_per_million` values
    use that pays nothing (open data, public-interest use). `current` marks the version
    in force now; older versions stay listed for the periods they rated.
    """
    rows = admin.list_tariffs(conn, at=datetime.now(UTC), dataset=params.dataset)
    return TariffListOut(items=[tariff_out(r) for r in rows if r.current or not params.current])
