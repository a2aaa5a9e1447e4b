"""Fair share: closed periods, the public transparency report, statements, invoices, usage.

Who sees what: anyone the periods and the transparency report; a supplier (a key whose
consumer acts for it) its own statement; a consumer its own invoices and usage; an
administrator and the ombudsman any statement or invoice, and the whole usage ledger.
None of these responses serves observations, so none is metered.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import psycopg
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import Field

from datahub.api import render
from datahub.api.auth import Access
from datahub.api.deps import ANONYMOUS_TOO, Caller, Conn, Overseer, Reader, SettingsDep
from datahub.api.query import Rfc3339
from datahub.api.schemas import CSV_RESPONSE, Format, InModel, OutModel, error_responses
from datahub.domain import SLUG
from datahub.errors import BadRequest, Forbidden, NotFound, Unauthorized
from datahub.fairshare import close, statements
from datahub.storage import periods

router = APIRouter(tags=["fair share"])

# The longest range of one usage query.
MAX_USAGE_RANGE = timedelta(days=366)

# A closed month, YYYY-MM; malformed is a 400 (close.period_bounds), not closed a 404.
PeriodPath = Annotated[str, Path(description="a closed month, YYYY-MM (UTC)", examples=["2026-11"])]


class ViewQuery(InModel):
    format: Format = None


class StatementQuery(InModel):
    supplier: str | None = Field(
        default=None,
        pattern=SLUG.pattern,
        description="administrators and the ombudsman: this supplier's statement",
    )
    format: Format = None


class InvoiceQuery(InModel):
    consumer: str | None = Field(
        default=None,
        pattern=SLUG.pattern,
        description="administrators and the ombudsman: this consumer's invoice",
    )
    format: Format = None


class UsageQuery(InModel):
    start: Rfc3339 | None = Field(
        default=None, alias="from", description="start, inclusive; default: this month's start"
    )
    end: Rfc3339 | None = Field(
        default=None, alias="to", description="end, exclusive; default: now"
    )
    format: Format = None


class PeriodOut(OutModel):
    period: str = Field(description="YYYY-MM")
    closed_at: datetime
    hash: str = Field(description="SHA-256 of the period's canonical result JSON")


class PeriodListOut(OutModel):
    items: list[PeriodOut]


class PurposeTotalsOut(OutModel):
    observations: int
    revenue_cents: int
    consumers: int = Field(description="consumers with usage of this purpose (not anonymous)")


class ObservationsByPurposeOut(OutModel):
    public_interest: int
    research: int
    commercial: int


class SupplierTotalsOut(OutModel):
    payout_cents: int
    revenue_cents: int
    platform_fee_cents: int
    observations: int
    observations_by_purpose: ObservationsByPurposeOut
    shadow_value_cents: int = Field(description="free use valued at the shadow prices")
    unpriced_observations: int = Field(description="observations no tariff was in force for")
    own_use_observations: int = Field(
        default=0,
        description="of `observations`, the supplier's own use of its own datasets: "
        "recorded, never invoiced (absent from periods closed before it was told apart)",
    )


class TariffOut(OutModel):
    dataset: str
    purpose: str
    version: int
    valid_from: datetime
    cents_per_million: int
    charged_cents_per_million: int = Field(description="0 for open datasets, which are free")
    shadow_cents_per_million: int
    platform_fee_basis_points: int
    observations: int = Field(description="observations this tariff rated in the period")


class OmbudsmanOut(OutModel):
    name: str
    email: str | None
    url: str | None
    postal_address: str | None


class ReportOut(OutModel):
    """The public transparency report of a closed period; it names no consumer."""

    period: str
    currency: str
    closed_at: datetime
    hash: str
    revenue_cents: int = Field(description="= platform_fee_cents + Σ supplier_payouts_cents")
    platform_fee_cents: int
    supplier_payouts_cents: dict[str, int] = Field(description="supplier slug -> cents")
    shadow_value_cents: int
    observations: int
    anonymous_observations: int
    unpriced_observations: int
    own_use_observations: int = Field(
        default=0,
        description="of `observations`, the supplier's own use of its own datasets: "
        "recorded, never invoiced (absent from periods closed before it was told apart)",
    )
    invoices: int = Field(description="how many consumers were invoiced")
    purposes: dict[str, PurposeTotalsOut]
    suppliers: dict[str, SupplierTotalsOut]
    tariffs: list[TariffOut]
    conservation: dict[str, bool] = Field(description="every split sums to its whole")
    ombudsman: OmbudsmanOut | None = Field(
        description="the ombudsman for data value and data ethics, who may check every "
        "figure of the period; null until the hub's settings name the office"
    )


class StatementLineOut(OutModel):
    dataset: str
    purpose: str
    tariff_version: int | None
    observations: int
    revenue_cents: int
    platform_fee_cents: int
    payout_cents: int
    shadow_value_cents: int
    unpriced_observations: int
    own_use: bool = Field(
        default=False, description="the supplier's own use: no revenue, no payout, no invoice"
    )


class StatementOut(SupplierTotalsOut):
    """A supplier's statement: its payout and the impact of free use, per dataset line."""

    period: str
    currency: str
    supplier: str
    closed_at: datetime
    hash: str
    lines: list[StatementLineOut]


class InvoiceLineOut(OutModel):
    dataset: str
    supplier: str
    purpose: str
    tariff_version: int | None
    observations: int
    cents_per_million: int
    cents: int
    platform_fee_basis_points: int
    platform_fee_cents: int
    supplier_cents: int


class InvoiceOut(OutModel):
    """A consumer's invoice: the total is rounded once, the lines sum exactly to it."""

    period: str
    currency: str
    consumer: str
    purpose: str | None
    observations: int
    total_cents: int
    closed_at: datetime
    hash: str
    lines: list[InvoiceLineOut]


class DailyUsageOut(OutModel):
    day: date
    dataset: str
    supplier: str
    requests: int
    observations: int


class UsageOut(OutModel):
    """A consumer's own usage, closed periods and the open one alike."""

    consumer: str
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    requests: int
    observations: int
    days: list[DailyUsageOut]


_VIEW_RESPONSES = {**error_responses(400, 401, 403, 404, 422, 429, 503), **CSV_RESPONSE}


@router.get(
    "/v1/fairshare/periods",
    response_model=PeriodListOut,
    responses=error_responses(401, 429, 503),
    openapi_extra=ANONYMOUS_TOO,
)
def list_periods(conn: Conn, caller: Reader) -> PeriodListOut:
    """List the closed periods, latest first, with the hash of each one's result."""
    return PeriodListOut(
        items=[
            PeriodOut(period=p.period, closed_at=p.closed_at, hash=p.hash)
            for p in periods.list_periods(conn)
        ]
    )


@router.get(
    "/v1/fairshare/report/{period}",
    response_model=ReportOut,
    responses=_VIEW_RESPONSES,
    openapi_extra=ANONYMOUS_TOO,
)
def get_report(
    period: PeriodPath,
    params: Annotated[ViewQuery, Query()],
    request: Request,
    conn: Conn,
    caller: Reader,
    settings: SettingsDep,
) -> ReportOut | Response:
    """Publish a closed period's transparency report: totals per supplier and purpose,
    the tariffs applied and the conservation check. Anyone may read it.

    CSV: one row per supplier and a total row. 404 if the period is not closed.
    """
    report = statements.transparency_report(
        close.get_closed(conn, period=period), ombudsman=settings.fairshare.ombudsman
    )
    if render.wants_csv(request, params.format):
        return render.csv_response(statements.REPORT_HEADER, statements.report_rows(report))
    return ReportOut.model_validate(report)


@router.get(
    "/v1/fairshare/statements/{period}", response_model=StatementOut, responses=_VIEW_RESPONSES
)
def get_statement(
    period: PeriodPath,
    params: Annotated[StatementQuery, Query()],
    request: Request,
    conn: Conn,
    caller: Caller,
) -> StatementOut | Response:
    """Show a supplier's statement of a closed period: payout, fee, shadow value per line.

    The caller's own supplier's (its key's consumer acts for a supplier); administrators
    name any with `supplier`. 401 without a key, 403 for another supplier's statement or
    a consumer that acts for none, 404 if the period is not closed.
    """
    own = _own_supplier(conn, caller)
    if params.supplier is not None and params.supplier != own:
        _require_admin(caller, "another supplier's statement")
        if not periods.supplier_exists(conn, slug=params.supplier):
            raise NotFound(f"no supplier has the slug {params.supplier!r}")
        supplier = params.supplier
    elif own is not None:
        supplier = own
    elif caller.oversees:
        raise BadRequest("an administrator or the ombudsman names the supplier: ?supplier=<slug>")
    else:
        raise Forbidden(f"{caller.consumer_slug} acts for no supplier, so it has no statements")
    statement = statements.supplier_statement(close.get_closed(conn, period=period), supplier)
    if render.wants_csv(request, params.format):
        return render.csv_response(
            statements.STATEMENT_HEADER, statements.statement_rows(statement)
        )
    return StatementOut.model_validate(statement)


@router.get("/v1/fairshare/invoices/{period}", response_model=InvoiceOut, responses=_VIEW_RESPONSES)
def get_invoice(
    period: PeriodPath,
    params: Annotated[InvoiceQuery, Query()],
    request: Request,
    conn: Conn,
    caller: Caller,
) -> InvoiceOut | Response:
    """Show the caller's invoice of a closed period; administrators name any `consumer`.

    A consumer without usage in the period gets an empty invoice of 0. 401 without a
    key, 403 for another consumer's invoice, 404 if the period is not closed.
    """
    _require_key(caller, "invoices")
    own = caller.consumer_slug
    if params.consumer is not None and params.consumer != own:
        _require_admin(caller, "another consumer's invoice")
        if not periods.consumer_exists(conn, slug=params.consumer):
            raise NotFound(f"no consumer has the slug {params.consumer!r}")
        consumer = params.consumer
    else:
        assert own is not None  # a key always has a consumer
        consumer = own
    invoice = statements.consumer_invoice(close.get_closed(conn, period=period), consumer)
    if render.wants_csv(request, params.format):
        return render.csv_response(statements.INVOICE_HEADER, statements.invoice_rows(invoice))
    return InvoiceOut.model_validate(invoice)


@router.get(
    "/v1/fairshare/usage",
    response_model=UsageOut,
    response_model_by_alias=True,
    responses={**error_responses(400, 401, 403, 422, 429, 503), **CSV_RESPONSE},
)
def get_usage(
    params: Annotated[UsageQuery, Query()], request: Request, conn: Conn, caller: Reader
) -> UsageOut | Response:
    """Show the caller's own usage per UTC day and dataset, the open period included.

    `from` defaults to the start of the current month, `to` to now; at most 366 days.
    401 for an anonymous caller, whose use is not recorded per caller.
    """
    _require_key(caller, "usage")
    assert caller.consumer_id is not None and caller.consumer_slug is not None
    start, end = _range(params.start, params.end)
    rows = periods.select_daily_usage(conn, consumer_id=caller.consumer_id, start=start, end=end)
    if render.wants_csv(request, params.format):
        return render.csv_response(
            ("day", "dataset", "supplier", "requests", "observations"),
            [(r.day.isoformat(), r.dataset, r.supplier, r.requests, r.observations) for r in rows],
        )
    return UsageOut(
        consumer=caller.consumer_slug,
        start=start,
        end=end,
        requests=sum(r.requests for r in rows),
        observations=sum(r.observations for r in rows),
        days=[
            DailyUsageOut(
                day=r.day,
                dataset=r.dataset,
                supplier=r.supplier,
                requests=r.requests,
                observations=r.observations,
            )
            for r in rows
        ],
    )


class LedgerQuery(InModel):
    start: Rfc3339 | None = Field(
        default=None, alias="from", description="start, inclusive; default: this month's start"
    )
    end: Rfc3339 | None = Field(
        default=None, alias="to", description="end, exclusive; default: now"
    )
    format: Format = None


class LedgerRowOut(OutModel):
    day: date
    consumer: str | None = Field(description="null: anonymous callers")
    purpose: str
    dataset: str
    supplier: str
    period: str | None = Field(description="the closed period it was rated in; null: open")
    requests: int
    observations: int


class LedgerOut(OutModel):
    """The usage ledger of every caller: what was served, of whose data, for which purpose."""

    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    requests: int
    observations: int
    rows: list[LedgerRowOut]


LEDGER_HEADER = (
    "day",
    "consumer",
    "purpose",
    "dataset",
    "supplier",
    "period",
    "requests",
    "observations",
)


@router.get(
    "/v1/fairshare/ledger",
    response_model=LedgerOut,
    response_model_by_alias=True,
    responses={**error_responses(400, 401, 403, 422, 429, 503), **CSV_RESPONSE},
)
def get_ledger(
    params: Annotated[LedgerQuery, Query()], request: Request, conn: Conn, caller: Overseer
) -> LedgerOut | Response:
    """Show the usage ledger of every consumer and of anonymous callers, per UTC day,
    purpose, dataset and period: administrators and the ombudsman.

    `from` defaults to the start of the current month, `to` to now; at most 366 days.
    """
    start, end = _range(params.start, params.end)
    rows = periods.select_ledger(conn, start=start, end=end)
    if render.wants_csv(request, params.format):
        return render.csv_response(
            LEDGER_HEADER,
            [
                (
                    r.day.isoformat(),
                    r.consumer or "",
                    r.purpose,
                    r.dataset,
                    r.supplier,
                    r.period or "",
                    r.requests,
                    r.observations,
                )
                for r in rows
            ],
        )
    return LedgerOut(
        start=start,
        end=end,
        requests=sum(r.requests for r in rows),
        observations=sum(r.observations for r in rows),
        rows=[LedgerRowOut.model_validate(r, from_attributes=True) for r in rows],
    )


def _range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or datetime.now(UTC)
    start = start or end.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if not start < end:
        raise BadRequest(f"from ({start.isoformat()}) must be before to ({end.isoformat()})")
    if end - start > MAX_USAGE_RANGE:
        raise BadRequest(f"at most {MAX_USAGE_RANGE.days} days of usage at a time")
    return start, end


def _own_supplier(conn: psycopg.Connection, caller: Access) -> str | None:
    _require_key(caller, "statements")
    if caller.supplier_id is None:
        return None
    return periods.get_supplier_slug(conn, supplier_id=caller.supplier_id)


def _require_key(caller: Access, what: str) -> None:
    if caller.anonymous:
        raise Unauthorized(f"{what} need an API key; anonymous callers have none")


def _require_admin(caller: Access, what: str) -> None:
    if not caller.oversees:
        raise Forbidden(f"only a key with the 'admin' or 'ombudsman' scope may see {what}")
