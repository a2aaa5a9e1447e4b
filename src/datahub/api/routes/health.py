"""Health checks for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter

from datahub.api.deps import ProbeConn
from datahub.api.schemas import HealthOut, LiveOut, error_responses
from datahub.storage import db, health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, responses=error_responses(503))
def get_health(conn: ProbeConn) -> HealthOut:
    """Report that the API and its database are up, and the TimescaleDB version if any.

    Answers 503 when the database cannot be reached.
    """
    return HealthOut(timescaledb=health.get_extension_version(conn, name="timescaledb"))


@router.get("/health/live", response_model=LiveOut)
def get_live() -> LiveOut:
    """Report that the process is up; does not touch the database."""
    return LiveOut()


@router.get("/health/ready", response_model=LiveOut, responses=error_responses(503))
def get_ready(conn: ProbeConn) -> LiveOut:
    """Report that the API can serve requests: the database answers a query.

    Answers 503 when the database cannot be reached.
    """
    db.ping(conn)
    return LiveOut()
