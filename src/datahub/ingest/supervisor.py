"""The ingest process: what runs around the pipeline (ingest/pipeline.py) for years.

It subscribes to the sources (ingest/mqtt.py), takes their messages in batches, stores each
batch through the pipeline, retrying while the database is unavailable (probing it, to
resume as soon as it answers), and acknowledges a batch's messages only after its commit.
Besides, on threads of their own: the health and telemetry endpoint (ingest/telemetry.py), the
rollup refresher (ingest/refresher.py), the dedup retention (ingest/retention.py), the
operator's device-health refresher and alarm scheduler and its notification delivery
(ops/worker.py), each working while this worker leads it (ingest/leader.py); the
SensorThings publisher of committed Observations (ingest/publish.py), and the back-fill of
a QoS 0 source's gap after it reconnects (ingest/backfill.py). It records the configured
sources in the database at start-up.
"""

from __future__ import annotations

import gc
import logging
import queue
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import psycopg

from datahub.config import Settings, parse_broker_url
from datahub.domain import SourceFormat
from datahub.errors import DatahubError, RetryError, StorageUnavailable
from datahub.ingest.backfill import backfill
from datahub.ingest.leader import process_name
from datahub.ingest.mqtt import Message, Subscriber
from datahub.ingest.pipeline import Pipeline
from datahub.ingest.publish import Publisher
from datahub.ingest.refresher import Refresher
from datahub.ingest.retention import DedupRetention
from datahub.ingest.store import Stored
from datahub.ingest.telemetry import HealthServer, IngestTelemetry, Readiness
from datahub.ops.worker import OpsWorker
from datahub.storage import db, sources

log = logging.getLogger(__name__)

# A reconnect back-fill starts this long before the gap: received_at is the network server's
# clock, and an uplink may have been in flight when the connection died.
BACKFILL_MARGIN = timedelta(seconds=60)
BACKFILL_ATTEMPTS = 5
# A batch closes this long after its last message. A QoS 1 source sends no more than its
# in-flight window (the broker's max_inflight_messages, or our MQTT 5 Receive Maximum)
# until the batch is committed and acknowledged: waiting out batch_wait_ms for messages that
# cannot come would cap it at one window per batch_wait_ms. A steady stream has gaps far
# shorter than this, so its batches still fill.
BATCH_IDLE_S = 0.05


# The ingest's collector: a young-generation collection every 10,000 allocations net of
# frees (Python's default is 700), so a batch of 2,000 messages triggers a few dozen, not
# hundreds. Higher thresholds gained little more and let garbage in cycles (a failed
# batch's traceback holds its frames) pile up while the database is down.
GC_THRESHOLDS = (10_000, 10, 10)


@contextmanager
def tuned_collector() -> Iterator[None]:
    """Run the ingest's work with its garbage collector settings; restore them after.

    What the process built so far (the catalog, codecs, settings) is frozen out of the
    collector's sight, and collections are rarer: the pure stages run ~25 % faster. A
    batch's objects are freed by reference counting; few of them form cycles.
    """
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


# The signals the ingest process handles (SIGTERM and Ctrl-C stop it).
HANDLED_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Keep the handled signals from interrupting this thread: the kernel hands them to
    another thread, and their handlers run in the main thread once this is over.

    CPython 3.11's `SimpleQueue.get(timeout=…)` waits for good when a signal handler runs
    during its wait and outlasts what was left of the timeout (it takes the negative
    remainder for "no timeout"): a SIGTERM then left an idle ingest unable ever to stop.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def take_batch(
    inbox: queue.SimpleQueue[Message], *, size: int, wait_s: float, idle_s: float = BATCH_IDLE_S
) -> list[Message]:
    """Take up to `size` messages, waiting at most `wait_s` after the first one, and closing
    the batch early once no message has come for `idle_s`."""
    with signals_deferred():
        try:
            batch = [inbox.get(timeout=wait_s)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + wait_s
        while len(batch) < size:
            remaining = min(deadline - time.monotonic(), idle_s)
            try:
                batch.append(inbox.get(timeout=remaining) if remaining > 0 else inbox.get_nowait())
            except queue.Empty:
                break
        return batch


class Ingest:
    """The ingest process: subscribe, batch, store with retries, acknowledge after commit."""

    def __init__(self, settings: Settings, *, pipeline: Pipeline | None = None) -> None:
        self._settings = settings
        self.publisher = Publisher(settings) if settings.sensorthings.mqtt_publish else None
        self.pipeline = pipeline or Pipeline(settings, on_commit=self._on_commit)
        # Bounded by the subscriber at ingest.queue_limit (ingest/mqtt.py).
        self.inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.subscriber = Subscriber(settings, inbox=self.inbox, on_resubscribed=self._backfill_gap)
        self._sources = {s.name: s for s in settings.sources}
        # Per source: the earliest start of a gap not back-filled yet, and whether its worker
        # runs; one worker per source at a time, which takes the gaps that come meanwhile.
        self._backfill_due: dict[str, datetime] = {}
        self._backfilling: set[str] = set()
        self._backfill_lock = threading.Lock()
        self.stop_event = threading.Event()
        self._conn = db.KeptConnection(
            settings,
            autocommit=True,
            batch_writes=True,
            application_name=process_name(settings),
        )
        self._in_flight = 0  # messages of the batch being stored, not yet acknowledged
        self._database_up = False
        # When the pipeline last made progress: a batch committed, or nothing waited.
        self._progress_at = time.monotonic()
        self.telemetry = IngestTelemetry(self)
        self.health: HealthServer | None = None
        self.refresher = Refresher(settings, stop_event=self.stop_event)
        self.retention = DedupRetention(settings, stop_event=self.stop_event)
        self.ops = OpsWorker(
            settings, stop_event=self.stop_event, interval_of=self.pipeline.reporting_interval
        )

    def run(self) -> None:
        """Run until `stop_event` is set; then finish and acknowledge the batch in flight."""
        limits = self._settings.ingest
        if limits.metrics_port:
            try:
                self.health = HealthServer(
                    self.telemetry,
                    host=limits.metrics_host,
                    port=limits.metrics_port,
                    ready=self.ready,
                )
                self.health.start()
            except OSError as exc:
                # Storing uplinks matters more than being observed: run on without the endpoint.
                log.error(
                    "cannot serve telemetry on %s:%d (%s); running without them",
                    limits.metrics_host,
                    limits.metrics_port,
                    exc,
                )
        try:
            self._record_sources()
            self.subscriber.start()
            self.refresher.start()
            self.retention.start()
            self.ops.start()
            if self.publisher is not None:
                self.publisher.start()
            log.info(
                "ingest running with %d sources%s",
                len(self._settings.sources),
                f" as worker {worker}" if (worker := self._settings.ingest.worker) else "",
            )
            try:
                while not self.stop_event.is_set():
                    self.run_once()
            finally:
                self.subscriber.stop()
                self.refresher.join(timeout=10.0)
                self.retention.join(timeout=10.0)
                self.ops.join(timeout=10.0)
                if self.publisher is not None:
                    self.publisher.stop()
                # Messages still queued were never acknowledged: the broker keeps them (QoS 1).
                self._conn.drop()
        finally:
            if self.health is not None:
                self.health.stop()

    def run_once(self) -> int:
        """Take one batch from the inbox, store it (retrying) and acknowledge it."""
        limits = self._settings.ingest
        batch = take_batch(self.inbox, size=limits.batch_size, wait_s=limits.batch_wait_ms / 1000)
        if batch:
            self._in_flight = len(batch)
            with self.telemetry.batch_seconds.time():
                self._store_with_retry(batch)
                for source, n in self.subscriber.ack(batch).items():
                    self.pipeline.stats.add("acknowledged", n, source=source)
            self._in_flight = 0
        self._progress_at = time.monotonic()
        return len(batch)

    def _on_commit(self, stored: Stored) -> None:
        """Hand what a batch stored to the post-commit consumers (never blocks)."""
        if self.publisher is not None:
            self.publisher.committed(stored.new_readings)

    def ready(self) -> Readiness:
        """Readiness: every source subscribed, the database answering a query now, and the
        pipeline draining what it received."""
        checks = {f"source:{name}": up for name, up in self.subscriber.online().items()}
        reasons = {name: "not connected and subscribed" for name, up in checks.items() if not up}
        try:
            with db.connect(self._settings) as conn:
                db.ping(conn)
            checks["database"] = True
        except (StorageUnavailable, psycopg.Error) as exc:
            checks["database"] = False
            reasons["database"] = str(exc)
        # A fresh connection can answer while the pipeline's own is stuck: the backlog tells.
        backlog = self.backlog()
        stalled_s = time.monotonic() - self._progress_at
        checks["pipeline"] = not backlog or stalled_s < self._settings.ingest.ready_stall_s
        if not checks["pipeline"]:
            reasons["pipeline"] = (
                f"{backlog} messages waiting, no batch committed for {stalled_s:.0f} s"
            )
        return Readiness(checks, reasons)

    # What the telemetry endpoint reads (datahub.ingest.telemetry.IngestState).

    def counters(self) -> dict[tuple[str, str | None], int]:
        return self.pipeline.stats.snapshot_by_source()

    def backlog(self) -> int:
        return self.inbox.qsize() + self._in_flight

    def last_stored_at(self) -> datetime | None:
        return self.pipeline.stats.last_stored_at

    def sources_online(self) -> dict[str, bool]:
        return self.subscriber.online()

    def database_up(self) -> bool:
        return self._database_up

    def leading(self) -> dict[str, bool]:
        return {
            leadership.job.label: leadership.leading
            for leadership in (
                self.refresher.leadership,
                self.retention.leadership,
                self.ops.maintenance,
                self.ops.delivery,
            )
        }

    def _backfill_gap(self, source_name: str, gap_start: datetime) -> None:
        """Back-fill a reconnected QoS 0 source from its Storage Integration, off this thread."""
        source = self._sources[source_name]
        if source.qos != 0 or source.storage_api is None or source.format != SourceFormat.TTN_V3:
            return  # a QoS 1 session redelivers by itself; without an API nothing can be done
        since = gap_start - BACKFILL_MARGIN
        with self._backfill_lock:
            due = self._backfill_due.get(source_name)
            self._backfill_due[source_name] = min(due, since) if due else since
            if source_name in self._backfilling:
                return
            self._backfilling.add(source_name)
        threading.Thread(
            target=self._backfill_worker,
            args=(source_name,),
            name=f"backfill-{source_name}",
            daemon=True,
        ).start()

    def _backfill_worker(self, source_name: str) -> None:
        while True:
            with self._backfill_lock:
                since = self._backfill_due.pop(source_name, None)
                if since is None or self.stop_event.is_set():
                    self._backfilling.discard(source_name)
                    return
            try:
                self._backfill_since(source_name, since)
            except Exception:  # a bug must not stop the back-fills of this source for good
                log.exception("source %s: back-fill since %s failed", source_name, since)
                self.pipeline.stats.add("backfill_failed", source=source_name)

    def _backfill_since(self, source_name: str, since: datetime) -> None:
        log.info("source %s: reconnected, back-filling since %s", source_name, since.isoformat())
        delay = 2.0
        for attempt in range(1, BACKFILL_ATTEMPTS + 1):
            # A pipeline of its own (the ingest thread's is not shared); counted in the same
            # stats. Overlaps with the live stream are duplicates, skipped by the dedup keys.
            pipeline = Pipeline(
                self._settings, stats=self.pipeline.stats, on_commit=self._on_commit
            )
            try:
                report = backfill(self._settings, source_name, since=since, pipeline=pipeline)
            except (DatahubError, psycopg.Error) as exc:
                log.warning(
                    "source %s: back-fill attempt %d of %d failed: %s",
                    source_name,
                    attempt,
                    BACKFILL_ATTEMPTS,
                    exc,
                )
                if attempt < BACKFILL_ATTEMPTS and not self.stop_event.wait(delay):
                    delay = min(delay * 2, 30.0)
                    continue
                break
            self.pipeline.stats.add("backfilled", report.stored, source=source_name)
            log.info("source %s: back-filled %s", source_name, report.as_json())
            return
        self.pipeline.stats.add("backfill_failed", source=source_name)
        log.error(
            "source %s: back-fill since %s failed; run `datahub backfill --source %s --since %s`",
            source_name,
            since.isoformat(),
            source_name,
            since.isoformat(),
        )

    def _store_with_retry(self, batch: list[Message]) -> None:
        delay = 0.5
        down_since: float | None = None
        while True:
            try:
                self.pipeline.store_batch(self._conn.get(), batch)
                self._database_up = True
                if down_since is not None:
                    log.info(
                        "stored the batch of %d after %.1f s of failures",
                        len(batch),
                        time.monotonic() - down_since,
                    )
                return
            except RetryError as exc:
                self._database_up = False
                down_since = down_since or time.monotonic()
                self.pipeline.stats.add("retries")
                log.warning(
                    "storing a batch of %d failed (%s); retrying within %.1f s, or as soon as "
                    "the database answers again",
                    len(batch),
                    exc,
                    delay,
                )
                self._conn.drop()
                # Keep retrying even when asked to stop: the batch is not acknowledged, so
                # giving up is also safe, but finishing it is what graceful shutdown means.
                self._pause(delay)
                delay = min(delay * 2, self._settings.ingest.retry_max_backoff_s)
                if self.stop_event.is_set() and delay >= self._settings.ingest.retry_max_backoff_s:
                    raise

    def _pause(self, seconds: float) -> None:
        """Wait before the next attempt, probing the database meanwhile: once it answers
        again after not answering, stop waiting.

        A database that answers throughout (the batch failed for another reason) gets the
        whole pause, so that a failing batch does not hammer it. A probe is a connection
        and a `SELECT 1`; the connection is kept for the next attempt.
        """
        deadline = time.monotonic() + seconds
        unreachable = False
        while (left := deadline - time.monotonic()) > 0:
            if self._probe():
                if unreachable:
                    log.info("the database answers again")
                    return
            else:
                unreachable = True
            time.sleep(min(self._settings.ingest.probe_interval_s, max(left, 0.0)))

    def _probe(self) -> bool:
        try:
            db.ping(self._conn.get())
            return True
        except (StorageUnavailable, *db.UNAVAILABLE):
            self._conn.drop()
            return False

    def _record_sources(self) -> None:
        rows = [
            sources.SourceRow(
                name=s.name,
                city=str(s.city),
                format=str(s.format),
                broker=_redact(self._settings.broker_for(s)),
                topic=s.topic_filter,
                qos=s.qos,
            )
            for s in self._settings.sources
        ]
        while True:
            try:
                conn = self._conn.get()
                with conn.transaction():
                    sources.upsert_sources(conn, sources=rows)
                return
            except (StorageUnavailable, *db.UNAVAILABLE) as exc:
                log.warning("database unavailable at start-up (%s); retrying", exc)
                self._conn.drop()
                if self.stop_event.wait(2.0):
                    return


def _redact(url: str) -> str:
    endpoint = parse_broker_url(url)
    return f"{'mqtts' if endpoint.tls else 'mqtt'}://{endpoint.host}:{endpoint.port}"
