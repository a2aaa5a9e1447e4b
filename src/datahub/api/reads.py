"""Where the API's reads go: the replica while it is within the staleness bound, else the
primary, or a 503 (`database.replica_lagging`); and what each answer says about it.

Without `database.replica_url` every read goes to the primary and nothing is said. With
it, a read goes to the replica while its monitor (api/replica.py) finds it reachable and
at most `database.replica_max_lag_s` behind; otherwise, and when no connection to it can
be had, to the primary. The answer says where it was read:

    X-Read-From: replica        X-Read-Staleness: 0.8
    X-Read-From: primary        X-Replica-Lag: 12.4     (or: unreachable)

`X-Read-Staleness` bounds, in seconds, the most recent writes the answer may lack; the
bound is never above `replica_max_lag_s`. Administration reads the primary: it must see
its own changes at once.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datahub.api.replica import ReplicaMonitor, ReplicaStatus
from datahub.config import Settings
from datahub.errors import ServiceUnavailable, StorageBusy, StorageUnavailable
from datahub.storage import db


@dataclass(frozen=True, slots=True)
class ReadPlace:
    """Where one read goes, and why."""

    pool: ConnectionPool[Any]
    replica: bool
    # The same server's pool for reads made on the event loop (`Reads.lend_async`).
    loop_pool: AsyncConnectionPool[Any] | None = None
    fresh_as_of: float | None = None  # on the replica: time.monotonic() it holds all before
    replica_lag: str | None = None  # on the primary although there is a replica: its lag

    def staleness_s(self) -> float:
        """On the replica: the most recent writes, in seconds, a read now may miss."""
        return max(time.monotonic() - (self.fresh_as_of or 0.0), 0.0)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers that say where the answer was read: taken when the
        response starts, after every read of it, the staleness bound covers them all."""
        if self.replica:
            staleness = tenths_up(self.staleness_s()).encode()
            return [(b"x-read-from", b"replica"), (b"x-read-staleness", staleness)]
        headers = [(b"x-read-from", b"primary")]
        if self.replica_lag is not None:
            headers.append((b"x-replica-lag", self.replica_lag.encode()))
        return headers


class Reads:
    """Chooses the place of each read among the primary and the replica."""

    def __init__(
        self,
        settings: Settings,
        *,
        primary: ConnectionPool[Any],
        replica: ConnectionPool[Any] | None = None,
        monitor: ReplicaMonitor | None = None,
        primary_loop: AsyncConnectionPool[Any] | None = None,
        replica_loop: AsyncConnectionPool[Any] | None = None,
    ) -> None:
        if (replica is None) != (monitor is None):
            raise ValueError("a replica pool needs its monitor, and the other way round")
        self._primary = primary
        self._replica = replica
        self._primary_loop = primary_loop
        self._replica_loop = replica_loop
        self.monitor = monitor
        self._max_lag_s = settings.database.replica_max_lag_s
        self._refuse = settings.database.replica_lagging == "unavailable"

    def place(self) -> ReadPlace:
        """Where a read goes now; ServiceUnavailable if it must go nowhere."""
        if self._replica is None or self.monitor is None:
            return self.primary()
        status = self.monitor.status()
        if status.usable(self._max_lag_s):
            return ReadPlace(
                self._replica,
                replica=True,
                loop_pool=self._replica_loop,
                fresh_as_of=status.fresh_as_of,
            )
        return self._instead(status)

    def primary(self) -> ReadPlace:
        """The primary, for reads that must see the latest writes."""
        return ReadPlace(self._primary, replica=False, loop_pool=self._primary_loop)

    def status(self) -> ReplicaStatus | None:
        """The replica as its monitor last found it; None without a replica."""
        return None if self.monitor is None else self.monitor.status()

    @contextmanager
    def lend(
        self, place: ReadPlace, *, record: Callable[[ReadPlace], None] = lambda _: None
    ) -> Iterator[psycopg.Connection]:
        """Lend a connection (autocommit) of `place`, or of the primary if the replica
        cannot lend one, or went past the bound while the request waited for it; `record`
        learns the place it came from."""
        stack = ExitStack()
        try:
            conn = stack.enter_context(db.lend(place.pool))
        except (StorageUnavailable, StorageBusy) as exc:
            self._doubt(place, exc)
            if isinstance(exc, StorageBusy):
                assert self.monitor is not None
                self.monitor.check()
            place = self._without_replica(exc)
            conn = stack.enter_context(db.lend(place.pool))
        if self._too_stale(place):
            stack.close()
            place = self._instead(self._status())
            conn = stack.enter_context(db.lend(place.pool))
        record(place)
        with stack:
            yield conn

    @asynccontextmanager
    async def lend_async(
        self, place: ReadPlace, *, record: Callable[[ReadPlace], None] = lambda _: None
    ) -> AsyncIterator[psycopg.AsyncConnection]:
        """`lend` for the event loop: the same places, the same fallback to the primary."""
        stack = AsyncExitStack()
        try:
            conn = await stack.enter_async_context(db.alend(_loop_pool(place)))
        except (StorageUnavailable, StorageBusy) as exc:
            self._doubt(place, exc)
            if isinstance(exc, StorageBusy):
                assert self.monitor is not None
                await asyncio.to_thread(self.monitor.check)
            place = self._without_replica(exc)
            conn = await stack.enter_async_context(db.alend(_loop_pool(place)))
        if self._too_stale(place):
            await stack.aclose()
            place = self._instead(self._status())
            conn = await stack.enter_async_context(db.alend(_loop_pool(place)))
        record(place)
        async with stack:
            yield conn

    def _doubt(self, place: ReadPlace, exc: StorageUnavailable | StorageBusy) -> None:
        """Re-raise a failure to lend unless it was the replica's; then doubt the replica.

        Behind PgBouncer a replica that went away shows as connections that never come
        free (StorageBusy): the caller then asks it directly (CHECK_TIMEOUT_S at most).
        """
        if not place.replica or self.monitor is None:
            raise exc
        if isinstance(exc, StorageUnavailable):
            self.monitor.suspect(f"no connection to it: {exc}")

    def _without_replica(self, exc: StorageUnavailable | StorageBusy) -> ReadPlace:
        """Where a read goes whose replica could not lend a connection."""
        status = self._status()
        if status.usable(self._max_lag_s):
            raise exc  # all its connections are in use: the replica is busy, not gone
        return self._instead(status)

    def _too_stale(self, place: ReadPlace) -> bool:
        """Whether the replica went past the bound while the request waited for it."""
        return (
            place.replica and self.monitor is not None and (place.staleness_s() > self._max_lag_s)
        )

    def _status(self) -> ReplicaStatus:
        assert self.monitor is not None
        return self.monitor.status()

    def _instead(self, status: ReplicaStatus) -> ReadPlace:
        if self._refuse:
            raise ServiceUnavailable(
                f"reads are refused while the replica {status.describe()}, more than "
                f"database.replica_max_lag_s ({self._max_lag_s:g} s) allows"
                if status.reachable and status.staleness_s is not None
                else f"reads are refused while the replica {status.describe()}"
            )
        lag = (
            "unreachable"
            if not status.reachable or status.staleness_s is None
            else tenths_up(status.staleness_s)
        )
        return ReadPlace(
            self._primary, replica=False, loop_pool=self._primary_loop, replica_lag=lag
        )


def _loop_pool(place: ReadPlace) -> AsyncConnectionPool[Any]:
    if place.loop_pool is None:
        raise StorageUnavailable("the connection pool is not open")
    return place.loop_pool


def tenths_up(seconds: float) -> str:
    """Seconds to a tenth, rounded up: a bound stated never understates."""
    return f"{math.ceil(round(seconds * 10, 6)) / 10:.1f}"


class ReadHeaders:
    """Adds the headers of the place a request read from (`request.state.read`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_place(message: Message) -> None:
            if message["type"] == "http.response.start":
                place = scope.get("state", {}).get("read")
                if isinstance(place, ReadPlace):
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), *place.headers()],
                    }
            await send(message)

        await self.app(scope, receive, send_with_place)
