"""Datasets: each supplier's sets of devices, with their licence and attribution."""

from __future__ import annotations

from fastapi import APIRouter

from datahub.api.deps import ANONYMOUS_TOO, Conn, MetricIndexDep, Reader
from datahub.api.schemas import (
    DatasetListOut,
    DatasetOut,
    LicenceRefOut,
    SupplierOut,
    error_responses,
)
from datahub.domain import LicenceClass
from datahub.storage import access

router = APIRouter(tags=["datasets"])


@router.get(
    "/v1/datasets",
    response_model=DatasetListOut,
    responses=error_responses(401, 429, 503),
    openapi_extra=ANONYMOUS_TOO,
)
def list_datasets(conn: Conn, metric_index: MetricIndexDep, caller: Reader) -> DatasetListOut:
    """List the datasets the caller may read, by slug, with licence and attribution.

    Anonymous callers see the open datasets; a key sees those granted to it too.
    """
    rows = access.list_datasets(conn, dataset_ids=caller.dataset_ids)
    return DatasetListOut(
        items=[
            DatasetOut(
                slug=row.slug,
                name=row.name,
                supplier=SupplierOut(slug=row.supplier_slug, name=row.supplier_name),
                licence_class=LicenceClass(row.licence_class),
                licence=LicenceRefOut(
                    id=row.licence_id, name=row.licence_name, url=row.licence_url
                ),
                attribution=row.attribution,
                metrics=sorted({m for p in row.profiles for m in metric_index.metrics_of(p)}),
                device_count=row.device_count,
            )
            for row in rows
        ]
    )
