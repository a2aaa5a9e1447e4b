"""Store stage: one batch in one transaction, idempotent on the uplinks' dedup keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from datahub.storage import dead_letters, devices, readings, uplinks
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


def store(conn: psycopg.Connection, batch: Batch) -> Stored:
    """Write a batch; uplinks already stored, in this batch or before, are skipped."""
    new_keys = uplinks.claim_keys(
        conn, keys=[(row.uplink.dedup_key, row.uplink.received_at) for row in batch.uplinks]
    )
    fresh: list[UplinkRow] = []
    for row in batch.uplinks:
        if row.uplink.dedup_key in new_keys:
            new_keys.discard(row.uplink.dedup_key)  # a second copy in this batch is a duplicate
            fresh.append(row)
    uplinks.insert_uplinks(conn, rows=fresh)
    fresh_readings = [r for row in fresh for r in batch.readings.get(row.uplink.dedup_key, ())]
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
    )
