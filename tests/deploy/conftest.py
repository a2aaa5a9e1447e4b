"""Fixtures of the deployment tests: one private primary + replica + PgBouncer per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from replicaset import ReplicaSet, replica_set


@pytest.fixture(scope="session")
def rs() -> Iterator[ReplicaSet]:
    """A private TimescaleDB primary (archiving its WAL), its replica and PgBouncer."""
    with replica_set("deploy") as started:
        yield started
