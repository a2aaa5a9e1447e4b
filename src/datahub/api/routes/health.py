"""Health checks for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request

from datahub.api.deps import ProbeConn, ReplicaStatusDep, SettingsDep
from datahub.api.reads import ReadPlace
from datahub.api.schemas import HealthOut, LiveOut, ReadyOut, ReplicaOut, error_responses
from datahub.errors import StorageUnavailable
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


@router.get("/health/ready", response_model=ReadyOut, responses=error_responses(503))
def get_ready(
    conn: ProbeConn, request: Request, replica: ReplicaStatusDep, settings: SettingsDep
) -> ReadyOut:
    """Report that the API can serve requests: the database answers a query where reads
    go, and the primary (which takes every write) answers; where reads go now and, with a
    streaming replica, how far behind it is.

    Answers 503 when the database cannot be reached, or while reads are refused because
    the replica is behind or unreachable (`database.replica_lagging: unavailable`).
    """
    db.ping(conn)
    place: ReadPlace | None = getattr(request.state, "read", None)
    if replica is None:
        return ReadyOut(reads="primary")
    if replica.primary_reachable is False:
        raise StorageUnavailable("the primary database does not answer")
    return ReadyOut(
        reads="replica" if place is not None and place.replica else "primary",
        replica=ReplicaOut(
            reachable=replica.reachable,
            staleness_s=None if replica.staleness_s is None else round(replica.staleness_s, 3),
            max_lag_s=settings.database.replica_max_lag_s,
        ),
    )
