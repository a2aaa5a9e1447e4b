"""Store stage: one batch in one transaction, idempotent on the uplinks' dedup keys."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from datahub.storage import dead_letters, devices, provenance, readings, uplinks
from datahub.storage.dead_letters import DeadLetterRow
from datahub.storage.readings import ReadingRow
from datahub.storage.uplinks import UplinkRow


@dataclass(frozen=True, slots=True)
class Batch:
    """What the pure stages made of a batch of messages, ready to be written."""

    uplinks: Sequence[UplinkRow]
    readings: Mapping[bytes, Sequence[ReadingRow]]  # by dedup key
    decode_failures: Mapping[bytes, DeadLetterRow]  # by dedup key
    dead_letters: Sequence[DeadLetterRow]  # messages that never became uplinks


@dataclass(frozen=True, slots=True)
class Stored:
    uplinks: int
    duplicates: int
    readings: int
    dead_letters: int
    by_source: Mapping[str, int] = field(default_factory=dict)  # new uplinks per source
    seen_by_source: Mapping[str, int] = field(default_factory=dict)  # every uplink per source
    new_readings: Sequence[ReadingRow] = ()  # the readings of the new uplinks, for the alerts


class DecoderIds:
    """Decoder names -> ids of the `decoder` table, cached for the life of the process.

    Only ids of rows that existed before the current statement are cached: a row this
    transaction inserts is gone if it rolls back, so its id is looked up again next time
    (by then committed, it is cached). Use one resolve per transaction, as `store` does.
    """

    def __init__(self) -> None:
        self._known: dict[str, int] = {}

    def resolve(self, conn: psycopg.Connection, names: Collection[str]) -> dict[str, int]:
        """Return name -> id for `names`, recording the names never seen before."""
        missing = set(names) - self._known.keys()
        inserted: dict[str, int] = {}
        if missing:
            found = provenance.select_decoder_ids(conn, names=missing)
            self._known.update(found)
            inserted = provenance.insert_decoders(conn, names=missing - found.keys())
        return {name: self._known.get(name) or inserted[name] for name in names}


def store(
    conn: psycopg.Connection, batch: Batch, *, decoder_ids: DecoderIds | None = None
) -> Stored:
    """Write a batch; uplinks already stored, in this batch or before, are skipped.

    Each reading records the decoder of its uplink (`UplinkRow.decoder`), by id.
    """
    new_keys = uplinks.claim_keys(
        conn, keys=[(row.uplink.dedup_key, row.uplink.received_at) for row in batch.uplinks]
    )
    fresh: list[UplinkRow] = []
    for row in batch.uplinks:
        if row.uplink.dedup_key in new_keys:
            new_keys.discard(row.uplink.dedup_key)  # a second copy in this batch is a duplicate
            fresh.append(row)
    uplinks.insert_uplinks(conn, rows=fresh)
    fresh_readings = with_decoder_ids(conn, fresh, batch.readings, decoder_ids or DecoderIds())
    stored_readings = readings.insert_readings(conn, rows=fresh_readings)
    letters = [*batch.dead_letters]
    letters += [
        batch.decode_failures[row.uplink.dedup_key]
        for row in fresh
        if row.uplink.dedup_key in batch.decode_failures
    ]
    dead_letters.insert_dead_letters(conn, letters=letters)
    last_seen: dict[int, datetime] = {}
    for row in fresh:
        if row.device_id is not None:
            seen = last_seen.get(row.device_id)
            if seen is None or seen < row.uplink.received_at:
                last_seen[row.device_id] = row.uplink.received_at
    devices.mark_seen(conn, last_seen=last_seen)
    return Stored(
        uplinks=len(fresh),
        duplicates=len(batch.uplinks) - len(fresh),
        readings=stored_readings,
        dead_letters=len(letters),
        by_source=Counter(row.uplink.source for row in fresh),
        seen_by_source=Counter(row.uplink.source for row in batch.uplinks),
        new_readings=fresh_readings,
    )


def with_decoder_ids(
    conn: psycopg.Connection,
    rows: Sequence[UplinkRow],
    by_key: Mapping[bytes, Sequence[ReadingRow]],
    decoder_ids: DecoderIds,
) -> list[ReadingRow]:
    """Return the readings of `rows`, each with its uplink's decoder id."""
    names = {row.decoder for row in rows if row.decoder and by_key.get(row.uplink.dedup_key)}
    ids = decoder_ids.resolve(conn, names)
    readings: list[ReadingRow] = []
    for row in rows:
        if of_row := by_key.get(row.uplink.dedup_key):
            decoder_id = ids[row.decoder] if row.decoder else None
            # A new row outright: dataclasses.replace costs several times as much.
            readings += [
                ReadingRow(r.time, r.device_id, r.metric, r.value, decoder_id) for r in of_row
            ]
    return readings
