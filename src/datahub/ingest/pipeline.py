"""The ingest pipeline: the only place that chains the stages, counts them and decides
whether a message is dropped (kept as a dead letter, acknowledged) or retried (not
acknowledged, tried again after a back-off).

    MQTT message -> envelope -> decode -> normalize -> store (one transaction per batch) -> ack

When a QoS 0 source with a Storage Integration reconnects, the ingest back-fills what the
broker dropped meanwhile (ingest/backfill.py), on a worker thread with a pipeline of its own.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

import decoders
from datahub.catalog import open_catalog
from datahub.config import Settings, parse_broker_url
from datahub.domain import DecodeStatus, SourceFormat, Uplink
from datahub.errors import (
    DatahubError,
    DropError,
    EnvelopeError,
    RetryError,
    StorageUnavailable,
)
from datahub.ingest import decode, envelope, normalize
from datahub.ingest.metrics import HealthServer, IngestMetrics
from datahub.ingest.mqtt import Message, Subscriber
from datahub.ingest.refresher import Refresher
from datahub.ingest.retention import DedupRetention
from datahub.ingest.store import Batch, DecoderIds, Stored, store
from datahub.ops.engine import AlertEngine
from datahub.ops.worker import OpsWorker
from datahub.storage import db, dead_letters, devices, sources
from datahub.storage.dead_letters import DeadLetterRow
from datahub.storage.devices import RegistryEntry
from datahub.storage.readings import ReadingRow
from datahub.storage.uplinks import UplinkRow
from decoders.codec_dir import CodecCatalog

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

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


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Stats:
    """Counters of what the pipeline did, by stage and outcome, in total and per source.

    Written by the ingest thread, read by the metrics endpoint's thread (ingest/metrics.py).
    """

    counts: Counter[str] = field(default_factory=Counter)
    by_source: Counter[tuple[str, str | None]] = field(default_factory=Counter)
    last_stored_at: datetime | None = None  # received_at of the newest uplink stored
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, key: str, n: int = 1, *, source: str | None = None) -> None:
        with self._lock:
            self.counts[key] += n
            self.by_source[key, source] += n

    def merge(self, counts: Counter[tuple[str, str | None]]) -> None:
        with self._lock:
            for (key, source), n in counts.items():
                self.counts[key] += n
                self.by_source[key, source] += n

    def mark_stored(self, received_at: datetime) -> None:
        with self._lock:
            if self.last_stored_at is None or received_at > self.last_stored_at:
                self.last_stored_at = received_at

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    def snapshot_by_source(self) -> dict[tuple[str, str | None], int]:
        with self._lock:
            return dict(self.by_source)


class Registry:
    """The device registry as the ingest sees it, reloaded from the database now and then."""

    def __init__(self, *, refresh_s: float = 30.0, miss_refresh_s: float = 5.0) -> None:
        self._entries: dict[str, RegistryEntry] = {}
        self._refresh_s = refresh_s
        self._miss_refresh_s = miss_refresh_s
        self._loaded = float("-inf")
        self._missed = False

    def refresh_if_due(self, conn: psycopg.Connection) -> bool:
        """Reload when stale, or soon after an unknown device was seen (it may be new)."""
        age = time.monotonic() - self._loaded
        if age >= self._refresh_s or (self._missed and age >= self._miss_refresh_s):
            self._entries = devices.select_registry(conn)
            self._loaded = time.monotonic()
            self._missed = False
            return True
        return False

    def get(self, dev_eui: str) -> RegistryEntry | None:
        entry = self._entries.get(dev_eui)
        if entry is None:
            self._missed = True
        return entry


class Pipeline:
    """Turns a batch of MQTT messages into rows, and writes them in one transaction."""

    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Mapping[str, decoders.Profile] | None = None,
        registry: Registry | None = None,
        stats: Stats | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        self._settings = settings
        self._sources = {s.name: s for s in settings.sources}
        # Default: the built-in profiles plus the codec directory, rescanned with the registry.
        self._catalog = catalog if catalog is not None else open_catalog(settings)
        self.registry = registry or Registry()
        self.stats = stats or Stats()
        self._clock = clock
        self.decoder_ids = DecoderIds()
        self.alerts = AlertEngine(settings.alerts)
        # What the batch in hand did; counted in `stats` once its transaction has committed,
        # so that a retried batch is counted once.
        self._pending: Counter[tuple[str, str | None]] = Counter()
        self._pending_newest: datetime | None = None

    def prepare(self, messages: Sequence[Message]) -> Batch:
        """Run the pure stages over a batch: envelope, decode, normalize."""
        now = self._clock()
        # One slot per uplink, in the order received; the decodable ones are filled once
        # the whole batch is decoded (a JavaScript codec takes its payloads in one call).
        slots: list[UplinkRow | None] = []
        decodable: list[tuple[int, Message, Uplink, int, decoders.Profile]] = []
        letters: list[DeadLetterRow] = []
        for message in messages:
            source = message.source
            self._count("received", source=source)
            try:
                uplink = self._parse(message, now)
            except DropError as exc:
                self._count(f"dead_letter.{exc.reason}", source=source)
                letters.append(_letter(message, "envelope", exc))
                continue
            entry = self.registry.get(uplink.dev_eui)
            if entry is None:
                self._count("unknown_device", source=source)
                slots.append(UplinkRow(uplink, None, DecodeStatus.UNKNOWN_DEVICE))
                continue
            profile = self._catalog.get(entry.profile)
            if profile is None:
                self._count("no_decoder", source=source)
                slots.append(UplinkRow(uplink, entry.device_id, DecodeStatus.NO_DECODER))
                continue
            decodable.append((len(slots), message, uplink, entry.device_id, profile))
            slots.append(None)

        readings: dict[bytes, list[ReadingRow]] = {}
        failures: dict[bytes, DeadLetterRow] = {}
        outcomes = decode.decode_uplinks([(p, u.f_port, u.payload) for _, _, u, _, p in decodable])
        for (slot, message, uplink, device_id, profile), outcome in zip(
            decodable, outcomes, strict=True
        ):
            source = message.source
            if isinstance(outcome, DropError):
                self._count("decode_failed", source=source)
                slots[slot] = UplinkRow(
                    uplink,
                    device_id,
                    DecodeStatus.FAILED,
                    decoder=decode.decoder_name(profile),
                    error=outcome.detail,
                )
                failures[uplink.dedup_key] = _letter(message, "decode", outcome, uplink)
                continue
            normalized = normalize.to_readings(
                outcome.data, profile.mappings, time=uplink.received_at, dev_eui=uplink.dev_eui
            )
            if normalized.skipped:
                self._count("value_skipped", len(normalized.skipped), source=source)
            slots[slot] = UplinkRow(
                uplink,
                device_id,
                DecodeStatus.DECODED,
                decoder=outcome.decoder,
                error="; ".join(normalized.skipped) or None,
            )
            readings[uplink.dedup_key] = [
                ReadingRow(r.time, device_id, r.metric, r.value) for r in normalized.readings
            ]
        return Batch(
            uplinks=[row for row in slots if row is not None],
            readings=readings,
            decode_failures=failures,
            dead_letters=letters,
        )

    def _parse(self, message: Message, now: datetime) -> Uplink:
        limits = self._settings.ingest
        if len(message.body) > limits.max_message_bytes:
            raise EnvelopeError(
                f"message of {len(message.body)} bytes exceeds the limit of "
                f"{limits.max_message_bytes} bytes"
            )
        source = self._sources[message.source]
        uplink = envelope.parse_envelope(
            message.body,
            format=source.format,
            source=source.name,
            city=source.city,
            topic=message.topic,
            now=message.arrived_at,
        )
        if len(uplink.payload) > limits.max_payload_bytes:
            raise EnvelopeError(
                f"payload of {len(uplink.payload)} bytes exceeds the limit of "
                f"{limits.max_payload_bytes} bytes"
            )
        if uplink.received_at > now + timedelta(seconds=limits.max_clock_skew_s):
            raise EnvelopeError(f"received_at {uplink.received_at.isoformat()} is in the future")
        if uplink.received_at < now - timedelta(days=limits.max_age_days):
            raise EnvelopeError(
                f"received_at {uplink.received_at.isoformat()} is older than "
                f"{limits.max_age_days} days"
            )
        return uplink

    def process(self, conn: psycopg.Connection, messages: Sequence[Message]) -> Stored:
        """Prepare and store a batch in the caller's transaction; then call `committed`."""
        self._pending.clear()
        self._pending_newest = None
        refreshed = self.registry.refresh_if_due(conn)
        if isinstance(self._catalog, CodecCatalog):
            if refreshed:
                self._catalog.rescan()  # a device added with a new codec arrives with both
            else:
                self._catalog.rescan_if_changed()  # a codec dropped in, changed or removed
        batch = self.prepare(messages)
        stored = store(conn, batch, decoder_ids=self.decoder_ids)
        for source, seen in stored.seen_by_source.items():
            fresh = stored.by_source.get(source, 0)
            self._count("stored", fresh, source=source)
            self._count("duplicates", seen - fresh, source=source)
        self._count("readings", stored.readings)
        # In the batch's transaction: alarms and their notifications commit with the readings.
        self._count(
            "alarm_transitions", self.alerts.evaluate(conn, stored.new_readings, now=self._clock())
        )
        if batch.uplinks:
            # Duplicates count too: they were stored before.
            self._pending_newest = max(row.uplink.received_at for row in batch.uplinks)
        return stored

    def committed(self) -> None:
        """Count the batch last processed: its transaction has committed."""
        self.stats.merge(self._pending)
        if self._pending_newest is not None:
            self.stats.mark_stored(self._pending_newest)
        self._pending.clear()
        self._pending_newest = None

    def _count(self, key: str, n: int = 1, *, source: str | None = None) -> None:
        self._pending[key, source] += n

    def reporting_interval(self, profile_id: str) -> int | None:
        """Return a profile's reporting interval in seconds, if the catalog has the profile."""
        profile = self._catalog.get(profile_id)
        return profile.reporting_interval_s if profile is not None else None


def _letter(
    message: Message, stage: str, exc: DropError, uplink: Uplink | None = None
) -> DeadLetterRow:
    return DeadLetterRow(
        received_at=message.arrived_at,
        source=message.source,
        topic=message.topic,
        stage=stage,
        reason=exc.reason,
        detail=exc.detail.replace("\x00", "\\x00"),
        body=message.body,
        dev_eui=uplink.dev_eui if uplink else None,
        dedup_key=uplink.dedup_key if uplink else None,
    )


def take_batch(
    inbox: queue.SimpleQueue[Message], *, size: int, wait_s: float, idle_s: float = BATCH_IDLE_S
) -> list[Message]:
    """Take up to `size` messages, waiting at most `wait_s` after the first one, and closing
    the batch early once no message has come for `idle_s`."""
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
        self.pipeline = pipeline or Pipeline(settings)
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
        self._conn: psycopg.Connection | None = None
        self._in_flight = 0  # messages of the batch being stored, not yet acknowledged
        self._database_up = False
        self.metrics = IngestMetrics(self)
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
                    self.metrics,
                    host=limits.metrics_host,
                    port=limits.metrics_port,
                    ready=self.ready,
                )
                self.health.start()
            except OSError as exc:
                # Storing uplinks matters more than being observed: run on without the endpoint.
                log.error(
                    "cannot serve metrics on %s:%d (%s); running without them",
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
            log.info("ingest running with %d sources", len(self._settings.sources))
            try:
                while not self.stop_event.is_set():
                    self.run_once()
            finally:
                self.subscriber.stop()
                self.refresher.join(timeout=10.0)
                self.retention.join(timeout=10.0)
                self.ops.join(timeout=10.0)
                # Messages still queued were never acknowledged: the broker keeps them (QoS 1).
                if self._conn is not None:
                    self._conn.close()
        finally:
            if self.health is not None:
                self.health.stop()

    def run_once(self) -> int:
        """Take one batch from the inbox, store it (retrying) and acknowledge it."""
        limits = self._settings.ingest
        batch = take_batch(self.inbox, size=limits.batch_size, wait_s=limits.batch_wait_ms / 1000)
        if batch:
            self._in_flight = len(batch)
            with self.metrics.batch_seconds.time():
                self._store_with_retry(batch)
                for source, n in self.subscriber.ack(batch).items():
                    self.pipeline.stats.add("acknowledged", n, source=source)
            self._in_flight = 0
        return len(batch)

    def ready(self) -> dict[str, bool]:
        """Readiness: every source subscribed, and the database answering a query now."""
        checks = {f"source:{name}": up for name, up in self.subscriber.online().items()}
        try:
            with db.connect(self._settings) as conn:
                db.ping(conn)
            checks["database"] = True
        except (StorageUnavailable, psycopg.Error):
            checks["database"] = False
        return checks

    # What the metrics endpoint reads (datahub.ingest.metrics.IngestState).

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
        # Imported here: the back-fill module builds on this one.
        from datahub.ingest.backfill import backfill

        log.info("source %s: reconnected, back-filling since %s", source_name, since.isoformat())
        delay = 2.0
        for attempt in range(1, BACKFILL_ATTEMPTS + 1):
            # A pipeline of its own (the ingest thread's is not shared); counted in the same
            # stats. Overlaps with the live stream are duplicates, skipped by the dedup keys.
            pipeline = Pipeline(self._settings, stats=self.pipeline.stats)
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
        while True:
            try:
                self._store_isolating(batch)
                self._database_up = True
                return
            except RetryError as exc:
                self._database_up = False
                self.pipeline.stats.add("retries")
                log.warning(
                    "storing a batch of %d failed (%s); retrying in %.1fs", len(batch), exc, delay
                )
                self._drop_connection()
                # Keep retrying even when asked to stop: the batch is not acknowledged, so
                # giving up is also safe, but finishing it is what graceful shutdown means.
                time.sleep(delay)
                delay = min(delay * 2, self._settings.ingest.retry_max_backoff_s)
                if self.stop_event.is_set() and delay >= self._settings.ingest.retry_max_backoff_s:
                    raise

    def _store_isolating(self, batch: list[Message]) -> None:
        """Store a batch; a message the database refuses is isolated by halving, then dropped."""
        conn = self._connection()
        try:
            with conn.transaction():
                self.pipeline.process(conn, batch)
            self.pipeline.committed()
        except db.UNAVAILABLE as exc:
            raise StorageUnavailable(str(exc)) from exc
        except psycopg.Error as exc:
            if conn.closed or conn.broken:
                raise StorageUnavailable(str(exc)) from exc
            if len(batch) == 1:
                self._refuse(batch[0], exc)
                return
            half = len(batch) // 2
            self._store_isolating(batch[:half])
            self._store_isolating(batch[half:])

    def _refuse(self, message: Message, exc: psycopg.Error) -> None:
        log.error("database refused a message from %s: %s", message.source, exc)
        self.pipeline.stats.add("dead_letter.storage_refused", source=message.source)
        letter = DeadLetterRow(
            received_at=message.arrived_at,
            source=message.source,
            topic=message.topic,
            stage="store",
            reason="storage_refused",
            detail=str(exc).replace("\x00", "\\x00"),
            body=message.body,
        )
        conn = self._connection()
        with conn.transaction():
            dead_letters.insert_dead_letters(conn, letters=[letter])

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = db.connect(self._settings, autocommit=True, batch_writes=True)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

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
                conn = self._connection()
                with conn.transaction():
                    sources.upsert_sources(conn, sources=rows)
                return
            except (StorageUnavailable, *db.UNAVAILABLE) as exc:
                log.warning("database unavailable at start-up (%s); retrying", exc)
                self._drop_connection()
                if self.stop_event.wait(2.0):
                    return


def _redact(url: str) -> str:
    endpoint = parse_broker_url(url)
    return f"{'mqtts' if endpoint.tls else 'mqtt'}://{endpoint.host}:{endpoint.port}"
