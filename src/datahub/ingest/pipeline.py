"""The ingest pipeline: the only place that chains the stages, counts them and decides
whether a message is dropped (kept as a dead letter) or must be retried (StorageUnavailable:
the caller tries the batch again later and acknowledges nothing meanwhile).

    message -> envelope -> decode -> normalize -> store (one transaction per batch)

Its callers: the ingest process (ingest/supervisor.py), which takes MQTT messages, retries
and acknowledges, and the back-fill (ingest/backfill.py), which takes The Things Stack's
stored messages. Both store a batch through `Pipeline.store_batch`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

import decoders
from datahub.catalog import open_catalog
from datahub.config import Settings
from datahub.domain import DecodeStatus, Uplink
from datahub.errors import DropError, EnvelopeError, StorageUnavailable
from datahub.ingest import envelope
from datahub.ingest.interpret import interpret
from datahub.ingest.mqtt import Message
from datahub.ingest.store import Batch, DecoderIds, Prepared, Stored, store
from datahub.ops.engine import AlertEngine
from datahub.storage import db, dead_letters, devices, uplinks
from datahub.storage.dead_letters import DeadLetterRow
from datahub.storage.devices import RegistryEntry
from datahub.storage.uplinks import UplinkRow
from decoders.codec_dir import CodecCatalog

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


# The stage counter of a new uplink by its decode status.
_OUTCOME = {
    DecodeStatus.DECODED: "stored",
    DecodeStatus.UNKNOWN_DEVICE: "unknown_device",
    DecodeStatus.NO_DECODER: "no_decoder",
    DecodeStatus.FAILED: "decode_failed",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of the messages of a batch: every one is exactly one of these."""

    stored: int  # new uplinks, decoded or not
    duplicates: int  # uplinks stored before
    dead_letters: int  # kept as dead letters instead of uplinks

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(
            self.stored + other.stored,
            self.duplicates + other.duplicates,
            self.dead_letters + other.dead_letters,
        )


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
        on_commit: Callable[[Stored], None] | None = None,
    ) -> None:
        """`on_commit` is told what each batch stored once its transaction has committed
        (`store_batch`): the SensorThings publisher's hand-over. It must neither block nor
        raise: the batch is stored, and its messages wait for their acknowledgement."""
        self._settings = settings
        self._sources = {s.name: s for s in settings.sources}
        # Default: the built-in profiles plus the codec directory, rescanned with the registry.
        self._catalog = catalog if catalog is not None else open_catalog(settings)
        self.registry = registry or Registry()
        self.stats = stats or Stats()
        self._clock = clock
        self._on_commit = on_commit
        self.decoder_ids = DecoderIds()
        self.alerts = AlertEngine(settings.alerts)
        # What the batch in hand did; counted in `stats` once its transaction has committed,
        # so that a retried batch is counted once.
        self._pending: Counter[tuple[str, str | None]] = Counter()
        self._pending_newest: datetime | None = None
        # Read once: it changes only with a migration (uplinks.select_legacy_until).
        self._legacy_until: datetime | None = None
        self._legacy_read = False

    def prepare(self, messages: Sequence[Message]) -> Batch:
        """Run the pure stages over a batch: envelope, then decode and normalize together
        (ingest/interpret.py: the batch's payloads of a JavaScript codec in one call).

        Each uplink keeps what its own payload decoded into, whatever other copies under
        its dedup key the batch holds: `store` decides which copy is written.
        """
        now = self._clock()
        received: list[tuple[Message, Uplink]] = []
        letters: list[DeadLetterRow] = []
        for message in messages:
            self._count("received", source=message.source)
            try:
                received.append((message, self._parse(message, now)))
            except DropError as exc:
                self._count(f"dead_letter.{exc.reason}", source=message.source)
                letters.append(_letter(message, "envelope", exc))
        uplinks = [uplink for _, uplink in received]
        results = interpret(uplinks, [self.registry.get(u.dev_eui) for u in uplinks], self._catalog)
        prepared = [
            Prepared(
                UplinkRow(uplink, result.device_id, result.status, result.decoder, result.error),
                message,
                result.readings,
                _letter(message, "decode", result.failure, uplink) if result.failure else None,
                result.skipped,
            )
            for (message, uplink), result in zip(received, results, strict=True)
        ]
        return Batch(uplinks=prepared, dead_letters=letters)

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
        if not self._legacy_read:
            self._legacy_until = uplinks.select_legacy_until(conn)
            self._legacy_read = True
        batch = self.prepare(messages)
        stored = store(
            conn,
            batch,
            decoder_ids=self.decoder_ids,
            legacy_until=self._legacy_until,
            letter_head_bytes=self._settings.ingest.dead_letter_head_bytes,
        )
        for item in stored.fresh:
            source = item.row.uplink.source
            self._count(_OUTCOME[item.row.status], source=source)
            if item.skipped:
                self._count("value_skipped", item.skipped, source=source)
        for item in stored.redelivered:
            self._count("duplicates", source=item.row.uplink.source)
        for item in stored.conflicts:
            self._count("dead_letter.dedup_conflict", source=item.row.uplink.source)
        if stored.conflicts:
            first = stored.conflicts[0].row.uplink
            log.warning(
                "%d messages carry the dedup key of a stored uplink with other content: kept "
                "as dead letters (dedup_conflict), the stored uplinks unchanged; the first "
                "from %s, DevEUI %s, f_cnt %d",
                len(stored.conflicts),
                first.source,
                first.dev_eui,
                first.f_cnt,
            )
        self._count("readings", stored.readings)
        # In the batch's transaction: alarms and their notifications commit with the readings.
        self._count(
            "alarm_transitions", self.alerts.evaluate(conn, stored.new_readings, now=self._clock())
        )
        if batch.uplinks:
            # Duplicates count too: they were stored before.
            self._pending_newest = max(item.row.uplink.received_at for item in batch.uplinks)
        return stored

    def store_batch(self, conn: psycopg.Connection, messages: Sequence[Message]) -> Outcome:
        """Prepare and store a batch on an autocommit connection, a transaction per part.

        A message the database refuses (say, text it cannot store) is isolated by halving
        the batch and kept as a `storage_refused` dead letter alone; the others are stored.
        Raise StorageUnavailable when the database is not there: nothing of the part in
        hand is stored, and the caller tries again.
        """
        try:
            with conn.transaction():
                stored = self.process(conn, messages)
            self.committed()
            if self._on_commit is not None:
                self._on_commit(stored)
        except db.UNAVAILABLE as exc:
            raise StorageUnavailable(str(exc)) from exc
        except psycopg.Error as exc:
            if conn.closed or conn.broken:
                raise StorageUnavailable(str(exc)) from exc
            if len(messages) == 1:
                self._refuse(conn, messages[0], exc)
                return Outcome(stored=0, duplicates=0, dead_letters=1)
            half = len(messages) // 2
            first = self.store_batch(conn, messages[:half])
            return first + self.store_batch(conn, messages[half:])
        dropped = len(messages) - stored.uplinks - stored.duplicates
        return Outcome(stored=stored.uplinks, duplicates=stored.duplicates, dead_letters=dropped)

    def _refuse(self, conn: psycopg.Connection, message: Message, exc: psycopg.Error) -> None:
        log.error("database refused a message from %s: %s", message.source, exc)
        letter = DeadLetterRow(
            received_at=message.arrived_at,
            source=message.source,
            topic=message.topic,
            stage="store",
            reason="storage_refused",
            detail=str(exc).replace("\x00", "\\x00"),
            body=message.body,
        )
        try:
            with conn.transaction():
                dead_letters.insert_dead_letters(
                    conn, letters=[letter], head_bytes=self._settings.ingest.dead_letter_head_bytes
                )
        except db.UNAVAILABLE as exc:
            raise StorageUnavailable(str(exc)) from exc
        # Its batch's counts were dropped with the transaction that failed on it.
        self.stats.add("received", source=message.source)
        self.stats.add("dead_letter.storage_refused", source=message.source)

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
