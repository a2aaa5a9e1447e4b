"""Re-decoding: run stored raw uplinks through the catalog again and rewrite their readings.

After a decoder fix or a mapping change (`--profile`, `--device`), or once the registry
knows a device whose uplinks were kept undecoded (`--pending`). Uplinks are walked in
(received_at, dedup_key) order by keyset pagination. Each batch is one transaction: the
readings of its changed uplinks are deleted and the new ones inserted, and the uplinks'
device, status and decoder updated, so a reader sees a batch's old readings or its new
ones, never a mix. An uplink whose result is what is stored already is not written.

That makes a run idempotent, and resuming is running the same command again: an
interrupted batch was rolled back as a whole, the batches before it compare equal and
are skipped without writes, so at most one batch is redone. (`--pending` does not even
read them again: the uplinks it resolved are no longer pending.)

Each batch that changes something appends an audit entry (`redecode.batch`) in its own
transaction: the selection, the batch's range of received_at and what it changed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

import decoders
from datahub import audit
from datahub.domain import DecodeStatus
from datahub.ingest.interpret import interpret
from datahub.ingest.store import DecoderIds
from datahub.storage import devices, readings, uplinks
from datahub.storage.devices import RegistryEntry
from datahub.storage.readings import ReadingRow
from datahub.storage.uplinks import DecodeResult, StoredUplink

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which stored uplinks to re-decode; the filters combine."""

    profile: str | None = None  # uplinks of the devices the registry gives this profile
    dev_eui: str | None = None
    pending: bool = False  # only uplinks without readings: unknown device, no decoder, failed
    since: datetime | None = None  # received_at, inclusive
    until: datetime | None = None  # received_at, exclusive


@dataclass
class Report:
    """What a run did, uplink by uplink; `changed` + `unchanged` is every uplink seen."""

    selected: int = 0  # uplinks the selection held when the run started
    seen: int = 0
    redecoded: int = 0  # decoded into readings
    failed: int = 0  # the decoder refused the payload
    unresolved: int = 0  # still no device in the registry, or no profile in the catalog
    changed: int = 0  # readings (values or decoder) or status differ from what was stored
    unchanged: int = 0
    readings_deleted: int = 0
    readings_inserted: int = 0
    position: tuple[datetime, bytes] | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, int]:
        return {
            "selected": self.selected,
            "redecoded": self.redecoded,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "unresolved": self.unresolved,
            "readings_deleted": self.readings_deleted,
            "readings_inserted": self.readings_inserted,
        }


def redecoded(
    batch: Sequence[StoredUplink],
    entries: Sequence[RegistryEntry | None],
    catalog: Mapping[str, decoders.Profile],
) -> list[tuple[DecodeResult, tuple[ReadingRow, ...]]]:
    """Decode and normalize stored uplinks as the ingest would now: its own rule (pure)."""
    return [
        (
            DecodeResult(s.received_at, s.dedup_key, r.device_id, r.status, r.decoder, r.error),
            tuple(r.readings),
        )
        for s, r in zip(batch, interpret(batch, entries, catalog), strict=True)
    ]


ReadingKey = tuple[int, datetime]  # (device id, time): the readings of one uplink


class Redecoder:
    """Re-decodes a selection of stored uplinks batch by batch, one transaction each.

    Give it an autocommit connection, so that each batch commits on its own (as the
    `datahub redecode` command does); on a connection inside a transaction the batches
    are savepoints of it, and the caller commits.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        *,
        catalog: Mapping[str, decoders.Profile] = decoders.CATALOG,
        batch_size: int = 1000,
        actor: str,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._conn = conn
        self._catalog = catalog
        self._batch_size = batch_size
        self._actor = actor
        self._decoder_ids = DecoderIds()

    def count(self, selection: Selection) -> int:
        """Count the uplinks a run over `selection` will walk through."""
        s = selection
        return uplinks.count_for_redecode(
            self._conn,
            profile=s.profile,
            dev_eui=s.dev_eui,
            pending=s.pending,
            since=s.since,
            until=s.until,
        )

    def run(
        self,
        selection: Selection,
        *,
        on_batch: Callable[[Report], None] | None = None,
    ) -> Report:
        """Re-decode every selected uplink; call `on_batch` after each committed batch."""
        s = selection
        report = Report(selected=self.count(selection))
        registry = devices.select_registry(self._conn)
        while True:
            with self._conn.transaction():
                batch = uplinks.select_for_redecode(
                    self._conn,
                    profile=s.profile,
                    dev_eui=s.dev_eui,
                    pending=s.pending,
                    since=s.since,
                    until=s.until,
                    after=report.position,
                    limit=self._batch_size,
                )
                if batch:
                    self._redecode_batch(batch, registry, report, selection)
            if not batch:
                return report
            report.position = (batch[-1].received_at, batch[-1].dedup_key)
            if on_batch is not None:
                on_batch(report)

    def _redecode_batch(
        self,
        batch: Sequence[StoredUplink],
        registry: Mapping[str, RegistryEntry],
        report: Report,
        selection: Selection,
    ) -> None:
        conn = self._conn
        outcomes = redecoded(batch, [registry.get(u.dev_eui) for u in batch], self._catalog)
        names = {result.decoder for result, rows in outcomes if rows and result.decoder}
        ids = self._decoder_ids.resolve(conn, names)
        keys: set[ReadingKey] = set()
        for stored, (result, _) in zip(batch, outcomes, strict=True):
            keys.update(_reading_keys(stored, result))
        existing: dict[ReadingKey, set[tuple[str, float, int | None]]] = defaultdict(set)
        for row in readings.select_uplink_readings(conn, keys=sorted(keys)):
            existing[row.device_id, row.time].add((row.metric, row.value, row.decoder_id))

        changed_keys: list[ReadingKey] = []
        new_rows: list[ReadingRow] = []
        results: list[DecodeResult] = []
        last_seen: dict[int, datetime] = {}
        for stored, (result, rows) in zip(batch, outcomes, strict=True):
            report.seen += 1
            if result.status is DecodeStatus.DECODED:
                report.redecoded += 1
            elif result.status is DecodeStatus.FAILED:
                report.failed += 1
            else:
                report.unresolved += 1
            decoder_id = ids.get(result.decoder) if result.decoder else None
            fresh = [ReadingRow(r.time, r.device_id, r.metric, r.value, decoder_id) for r in rows]
            uplink_keys = _reading_keys(stored, result)
            old = set().union(*(existing.get(k, set()) for k in uplink_keys))
            before = (stored.device_id, stored.status, stored.decoder, stored.error)
            after = (result.device_id, result.status, result.decoder, result.error)
            if before == after and old == {(r.metric, r.value, r.decoder_id) for r in fresh}:
                report.unchanged += 1
                continue
            report.changed += 1
            changed_keys += uplink_keys
            new_rows += fresh
            results.append(result)
            if fresh and result.device_id is not None:
                seen = last_seen.get(result.device_id)
                if seen is None or seen < stored.received_at:
                    last_seen[result.device_id] = stored.received_at
        deleted, inserted = readings.replace_readings(conn, keys=changed_keys, rows=new_rows)
        uplinks.mark_decoded(conn, results=results)
        devices.mark_seen(conn, last_seen=last_seen)
        report.readings_deleted += deleted
        report.readings_inserted += inserted
        if results:
            audit.record(
                conn,
                actor=self._actor,
                action="redecode.batch",
                target="uplinks",
                after={
                    "selection": selection,
                    "received_from": batch[0].received_at,
                    "received_to": batch[-1].received_at,
                    "uplinks_changed": len(results),
                    "readings_deleted": deleted,
                    "readings_inserted": inserted,
                },
            )


def _reading_keys(stored: StoredUplink, result: DecodeResult) -> list[ReadingKey]:
    """The (device, time) keys whose readings belong to this uplink, before and after."""
    ids = {d for d in (stored.device_id, result.device_id) if d is not None}
    return [(device_id, stored.received_at) for device_id in sorted(ids)]
