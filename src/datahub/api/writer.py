"""The API's writes, batched: many requests' rate slots or usage rows share one transaction.

A request hands its write (a function of a connection) to a `Writer` of its process and
waits until the transaction holding it has committed; the writer's thread takes every
write queued meanwhile into the next transaction. Under load a commit (and, for the
ledger, its WAL flush) serves dozens of requests instead of one, and the requests' own
connections only read. The writes go through the writer pool: the primary, where reads
may some day go to a replica (deps.py).

- The ledger's writer commits durably: a response leaves only after its usage is on disk.
- The rate windows' writer runs each write in autocommit, one statement each as before,
  without a transaction around them: a rate slot refuses nothing, and the windows live a
  second in an unlogged table, which a crash of the database empties anyway.

A writer keeps its connection between batches: no check and no hand-over per batch.

Writes within a transaction run in the order of their `key` (the subject), so two
processes' batches lock the same rows in the same order and never deadlock. In the ledger's
transaction, a write that raises an `ApiError` (a refusal: over the quota, a reused
Idempotency-Key) gets it, and the transaction is rolled back and run again without it,
so that nothing it wrote stays; any other error fails the batch, which is then run one
write at a time, so that one bad write fails alone.
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
Work = Callable[[psycopg.Connection], T]

# Writes per transaction, at most: enough to take all of a burst, few enough that one
# transaction's locks are held for milliseconds.
MAX_BATCH = 256


class Writes(Protocol):
    """What runs a request's write and returns its result."""

    def run(self, work: Work[T], *, key: str) -> T: ...

    async def run_async(self, work: Work[T], *, key: str) -> T: ...


@dataclass(eq=False)
class _Job(Generic[T]):
    work: Work[T]
    key: str
    done: Callable[[], None]  # called by the writer's thread once the job is through
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

    def run(self, work: Work[T], *, key: str) -> T:
        """Run `work` in the next transaction; return its result once that has committed."""
        done = threading.Event()
        job: _Job[T] = _Job(work, key, done.set)
        self._queue.put(job)
        done.wait()
        return _outcome(job)

    async def run_async(self, work: Work[T], *, key: str) -> T:
        """Like `run`, awaited in the event loop: no thread waits for the writer."""
        loop = asyncio.get_running_loop()
        finished = loop.create_future()

        def done() -> None:
            loop.call_soon_threadsafe(_finish, finished)

        job: _Job[T] = _Job(work, key, done)
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
                self._commit(batch)
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
            conn.autocommit = not self._durable
            self._conn = conn
        return self._conn

    def _give_back(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            if not conn.broken and not conn.closed:
                conn.autocommit = False
            self._pool.putconn(conn)

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

    def run(self, work: Work[T], *, key: str) -> T:
        """Run `work` on the connection now."""
        return work(self._conn)

    async def run_async(self, work: Work[T], *, key: str) -> T:
        """Run `work` on the connection now (it blocks the event loop: tests only)."""
        return work(self._conn)
