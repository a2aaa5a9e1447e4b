"""The canonical metrics of the device catalog."""

from __future__ import annotations

from fastapi import APIRouter

from datahub.api.deps import MetricIndexDep
from datahub.api.schemas import MetricListOut, MetricOut, error_responses

router = APIRouter(tags=["metrics"])


@router.get("/v1/metrics", response_model=MetricListOut, responses=error_responses())
def list_metrics(metric_index: MetricIndexDep) -> MetricListOut:
    """List the canonical metrics, sorted by name, with unit and the profiles reporting them."""
    return MetricListOut(
        items=[
            MetricOut(
                name=m.name, unit=m.unit, description=m.description, profiles=list(m.profiles)
            )
            for m in metric_index.metrics.values()
        ]
    )
