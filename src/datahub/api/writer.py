"""The API's writes, batched: many requests' rate slots or charges share one statement.

A request hands its write to a `Writer` of its process and waits until it has committed;
the writer's thread takes every write queued meanwhile into the next batch. Under load a
round trip (and, for the ledger, its WAL flush) serves dozens of requests instead of one,
and the requests' own connections only read. The writes go through the writer pool: the
primary, even when reads go to a replica (deps.py).

Writes of one kind that many requests make (a rate slot, a charge) are made `Together`:
the jobs of a batch that carry one hand their items to a single statement, in autocommit,
one round trip for all of them, and for the ledger its own durable commit: a response
leaves only after its usage is on disk. The rate windows live a second in an unlogged
table, which a crash of the database empties anyway. A job that statement leaves undone
(a consumer's charges that do not fit its quota together) runs alone afterwards, with its
own `work`.

Writes that run alone (those, and the ledger's other writes: an Idempotency-Key claimed
with its answer and its usage) share one transaction of the ledger's writer (the rate
writer runs them in autocommit), in the order of their `key` (the subject), so two
processes' batches lock the same rows in the same order and never deadlock. In the
ledger's transaction, a write that raises an `ApiError` (a refusal: over the quota, a
reused Idempotency-Key) gets it, and the transaction is rolled back and run again without
it, so that nothing it wrote stays; any other error fails the batch, which is then run
one write at a time, so that one bad write fails alone. A statement made together that
fails leaves each of its jobs to run alone, and fail alone if it must.

A writer keeps its connection between batches: no check and no hand-over per batch.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from datahub.errors import ApiError
from datahub.storage import db

log = logging.getLogger(__name__)

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 (the item of a write made together)
Work = Callable[[psycopg.Connection], T]

# Writes per transaction, at most: enough to take all of a burst, few enough that one
# transaction's locks are held for milliseconds.
MAX_BATCH = 256


@dataclass(frozen=True, eq=False)
class Together(Generic[I, T]):
    """A kind of write that the jobs of a batch make in one statement.

    `run` gets their items, in the batch's order, and returns each one's result, or None
    for one it left undone, which then runs alone (its job's `work`).
    """

    run: Callable[[psycopg.Connection, list[I]], list[T | None]]


class Writes(Protocol):
    """What runs a request's write and returns its result."""

    def run(
        self, work: Work[T], *, key: str, together: Together[Any, T] | None = None, item: Any = None
    ) -> T: ...

    async def run_async(
        self, work: Work[T], *, key: str, together: Together[Any, T] | None = None, item: Any = None
    ) -> T: ...


@dataclass(eq=False)
class _Job(Generic[T]):
    work: Work[T]
    key: str
    done: Callable[[], None]  # called by the writer's thread once the job is through
    together: Together[Any, T] | None = None
    item: Any = None
    result: Any = None
    error: BaseException | None = None


class Writer:
    """A thread that runs the writes handed to it in shared transactions."""

    def __init__(self, pool: ConnectionPool[Any], *, name: str, durable: bool) -> None:
        self._pool = pool
        self._durable = durable
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._conn: psycopg.Connection | None = None
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def run(
        self, work: Work[T], *, key: str, together: Together[Any, T] | None = None, item: Any = None
    ) -> T:
        """Run `work` (or `item` with the others of its kind, `together`) in the next batch;
        return its result once that has committed."""
        done = threading.Event()
        job: _Job[T] = _Job(work, key, done.set, together, item)
        self._queue.put(job)
        done.wait()
        return _outcome(job)

    async def run_async(
        self, work: Work[T], *, key: str, together: Together[Any, T] | None = None, item: Any = None
    ) -> T:
        """Like `run`, awaited in the event loop: no thread waits for the writer."""
        loop = asyncio.get_running_loop()
        finished = loop.create_future()

        def done() -> None:
            loop.call_soon_threadsafe(_finish, finished)

        job: _Job[T] = _Job(work, key, done, together, item)
        self._queue.put(job)
        await finished
        return _outcome(job)

    def close(self) -> None:
        """Finish the writes queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _serve(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stop = True
                        break
                    batch.append(job)
                batch.sort(key=lambda j: j.key)
                self._commit(self._together(batch))
                for job in batch:
                    job.done()
                if stop:
                    return
        finally:
            self._give_back()

    def _connection(self) -> psycopg.Connection:
        """The writer's own connection, kept between batches (no check, no hand-over per
        batch): taken from the pool at the first write, and again after one broke."""
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            self._give_back()
        if self._conn is None:
            with db.lent_errors(self._pool):
                conn = self._pool.getconn()
            conn.autocommit = True  # the ledger's transactions are begun by `_commit`
            self._conn = conn
        return self._conn

    def _give_back(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            if not conn.broken and not conn.closed:
                conn.autocommit = False
            self._pool.putconn(conn)

    def _together(self, batch: list[_Job[Any]]) -> list[_Job[Any]]:
        """Make the writes of the batch that go together, a statement for each kind; return
        the jobs left to run alone (those without a kind, and those it left undone)."""
        kinds: dict[Together[Any, Any], list[_Job[Any]]] = {}
        alone: list[_Job[Any]] = []
        for job in batch:
            if job.together is None:
                alone.append(job)
            else:
                kinds.setdefault(job.together, []).append(job)
        for kind, jobs in kinds.items():
            try:
                conn = self._connection()
                with db.lent_errors(self._pool):
                    results = kind.run(conn, [job.item for job in jobs])
            except Exception as exc:  # each runs alone then, and fails alone if it must
                log.warning(
                    "%d writes made together failed (%s); writing one at a time", len(jobs), exc
                )
                alone.extend(jobs)
                continue
            for job, result in zip(jobs, results, strict=True):
                if result is None:
                    alone.append(job)
                else:
                    job.result = result
        return alone

    def _commit(self, batch: list[_Job[Any]], *, fresh: bool = False) -> None:
        """Run the batch; see the module's docstring for failures."""
        pending = batch
        while pending:
            refused = False
            begun = False
            try:
                conn = self._connection()
                with db.lent_errors(self._pool):
                    if self._durable:
                        with conn.transaction():
                            for job in pending:
                                try:
                                    job.result = job.work(conn)
                                except ApiError as exc:
                                    job.error = exc
                                    refused = True
                                begun = True
                            if refused:
                                raise psycopg.Rollback()
                    else:  # each write commits on its own
                        for job in pending:
                            job.result = job.work(conn)
                            begun = True
            except Exception as exc:
                if not begun and not fresh and self._conn is not None and self._conn.broken:
                    # The kept connection died while idle (the database restarted): nothing
                    # of the batch ran, so it runs again on a new one.
                    self._commit(pending, fresh=True)
                    return
                if len(pending) == 1:
                    pending[0].error = exc
                    return
                log.warning(
                    "a batch of %d writes failed (%s); writing one at a time", len(pending), exc
                )
                for job in pending:
                    self._commit([job])
                return
            if not refused:
                return
            pending = [job for job in pending if job.error is None]


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():  # unless the request was cancelled meanwhile
        future.set_result(None)


def _outcome(job: _Job[T]) -> T:
    if job.error is not None:
        raise job.error
    result: T = job.result
    return result


class Inline:
    """Runs each write at once on one given connection, in its transaction: for tests,
    whose connection rolls back at the end, and for one-off tools."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def run(
        self, work: Work[T], *, key: str, together: Together[Any, T] | None = None, item: Any = None
    ) -> T:
        """Run `work` (or `item` alone of its kind) on the connection now."""
        if together is not None:
            (result,) = together.run(self._conn, [item])
            if result is not None:
                return result
        return work(self._conn)

    async def run_async(
        self, work: Work[T], *, key: str, together: Together[Any, T] | None = None, item: Any = None
    ) -> T:
        """Run it on the connection now (it blocks the event loop: tests only)."""
        return self.run(work, key=key, together=together, item=item)
