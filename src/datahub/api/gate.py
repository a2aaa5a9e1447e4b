"""The bound on requests that use the database at once, per API process.

`database.pool_size` requests hold a connection and up to `database.pool_queue` more wait
for one (at most `database.pool_timeout_s`); a request past that bound is answered 429
with `Retry-After` at once. Without the bound a burst would wait, unbounded, for a thread
and then a connection, and whoever waited longest would get a time-out instead of data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from datahub.errors import StorageBusy


class Gate:
    """Counts the requests inside; used from the event loop only, so it needs no lock."""

    def __init__(self, *, connections: int, queue: int) -> None:
        self.connections = connections
        self.capacity = connections + queue
        self.inside = 0

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Count one request in while it runs; StorageBusy if the bound is reached."""
        if self.inside >= self.capacity:
            raise StorageBusy(
                f"{self.inside} requests already use or wait for its "
                f"{self.connections} database connections"
            )
        self.inside += 1
        try:
            yield
        finally:
            self.inside -= 1
