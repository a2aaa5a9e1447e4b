"""Store stage: one batch in one transaction, idempotent on the uplinks' dedup keys."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from hashlib import blake2b

import psycopg

from datahub.domain import Uplink
from datahub.ingest.mqtt import Message
from datahub.storage import dead_letters, devices, provenance, readings, uplinks
from datahub.storage.dead_letters import DeadLetterRow
from datahub.storage.readings import ReadingRow
from datahub.storage.uplinks import UplinkRow


@dataclass(slots=True)  # not frozen: one per uplink ingested
class Prepared:
    """One uplink of a batch with what the pure stages made of its own payload."""

    row: UplinkRow
    message: Message  # what it came in, kept as a dead letter should it conflict
    readings: Sequence[ReadingRow] = ()
    failure: DeadLetterRow | None = None  # the decoder's refusal, kept if the uplink is new
    skipped: int = 0  # decoded values the mapping could not use


@dataclass(frozen=True, slots=True)
class Batch:
    """What the pure stages made of a batch of messages, ready to be written."""

    uplinks: Sequence[Prepared]
    dead_letters: Sequence[DeadLetterRow]  # messages that never became uplinks


@dataclass(frozen=True, slots=True)
class Stored:
    """What `store` did with each uplink of a batch."""

    fresh: Sequence[Prepared]  # new: written with their readings
    redelivered: Sequence[Prepared]  # stored before with the same content: skipped
    conflicts: Sequence[Prepared]  # their key is stored with other content: dead letters
    readings: int
    dead_letters: int  # rows written to dead_letter: the batch's, decode failures, conflicts
    # The readings of the new uplinks: for the alert rules, in the batch's transaction, and
    # the SensorThings publisher, after its commit.
    new_readings: Sequence[ReadingRow] = ()

    @property
    def uplinks(self) -> int:
        return len(self.fresh)

    @property
    def duplicates(self) -> int:
        return len(self.redelivered)


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
    conn: psycopg.Connection,
    batch: Batch,
    *,
    decoder_ids: DecoderIds | None = None,
    legacy_until: datetime | None = None,
    letter_head_bytes: int,
) -> Stored:
    """Write a batch; uplinks already stored, in this batch or before, are skipped.

    A message whose dedup key is stored (or comes earlier in the batch) with other content
    (DevEUI, f_port, f_cnt, payload) is another uplink under the same key, or forged: it is
    kept as a `dedup_conflict` dead letter and never touches the stored uplink. Each
    reading records the decoder of its uplink (`UplinkRow.decoder`), by id. `legacy_until`:
    see `uplinks.select_legacy_until`; `letter_head_bytes`: `insert_dead_letters`.
    """
    first: dict[bytes, Prepared] = {}
    repeated: list[Prepared] = []
    for item in batch.uplinks:
        key = item.row.uplink.dedup_key
        if key in first:
            repeated.append(item)
        else:
            first[key] = item
    digests = {key: content_digest(item.row.uplink) for key, item in first.items()}
    new_keys = uplinks.claim_keys(
        conn,
        keys=[(key, item.row.uplink.received_at) for key, item in first.items()],
        digests=digests,
        legacy_keys=_legacy_keys(first.values(), legacy_until),
    )
    fresh = [item for key, item in first.items() if key in new_keys]
    again = [item for key, item in first.items() if key not in new_keys]
    # What each key stands for: the digest of the first copy in this batch, if that was
    # new, else of the stored uplink (None: unknown, taken for the same).
    reference: dict[bytes, bytes | None] = {key: digests[key] for key in new_keys}
    stored_at: dict[bytes, datetime] = {}
    if again:
        reference |= _stored_digests(conn, again, stored_at)
    redelivered: list[Prepared] = []
    conflicts: list[Prepared] = []
    for item in [*again, *repeated]:
        key = item.row.uplink.dedup_key
        known = reference.get(key)
        own = digests[key] if item is first[key] else content_digest(item.row.uplink)
        if known is None or known == own:
            redelivered.append(item)
        else:
            conflicts.append(item)

    rows = [item.row for item in fresh]
    uplinks.insert_uplinks(conn, rows=rows)
    fresh_readings = with_decoder_ids(conn, fresh, decoder_ids or DecoderIds())
    stored_readings = readings.insert_readings(conn, rows=fresh_readings)
    letters = [*batch.dead_letters]
    letters += [item.failure for item in fresh if item.failure is not None]
    letters += [_conflict(item, first[item.row.uplink.dedup_key], stored_at) for item in conflicts]
    dead_letters.insert_dead_letters(conn, letters=letters, head_bytes=letter_head_bytes)
    last_seen: dict[int, datetime] = {}
    for row in rows:
        if row.device_id is not None:
            seen = last_seen.get(row.device_id)
            if seen is None or seen < row.uplink.received_at:
                last_seen[row.device_id] = row.uplink.received_at
    devices.mark_seen(conn, last_seen=last_seen)
    return Stored(
        fresh=fresh,
        redelivered=redelivered,
        conflicts=conflicts,
        readings=stored_readings,
        dead_letters=len(letters),
        new_readings=fresh_readings,
    )


def content_digest(uplink: Uplink) -> bytes:
    """Digest what a redelivery of `uplink` repeats: DevEUI, f_port, f_cnt and payload."""
    return _digest(uplink.dev_eui, uplink.f_port, uplink.f_cnt, uplink.payload)


def _digest(dev_eui: str, f_port: int | None, f_cnt: int, payload: bytes) -> bytes:
    # The port's "" (none) cannot be mistaken for a number, nor a DevEUI for the rest: the
    # DevEUI is 16 hex digits, the separators are not digits.
    head = f"{dev_eui}:{'' if f_port is None else f_port}:{f_cnt}:".encode()
    return blake2b(head + payload, digest_size=16).digest()


def _stored_digests(
    conn: psycopg.Connection, again: Sequence[Prepared], stored_at: dict[bytes, datetime]
) -> dict[bytes, bytes | None]:
    """Return the digests of what is stored under the keys of `again` (or their previous
    keys); note when each was received in `stored_at`."""
    keys = {item.row.uplink.dedup_key for item in again}
    keys |= {u.legacy_key for item in again if (u := item.row.uplink).legacy_key is not None}
    claimed = uplinks.select_claimed(conn, keys=keys)
    found: dict[bytes, tuple[bytes, uplinks.ClaimedKey]] = {}
    for item in again:
        u = item.row.uplink
        for stored_key in (u.dedup_key, u.legacy_key):
            if stored_key is not None and stored_key in claimed:
                found[u.dedup_key] = stored_key, claimed[stored_key]
                break
    digests: dict[bytes, bytes | None] = {}
    # Keys claimed before migration 0008 have no digest: their uplinks are read instead.
    unknown = {
        stored_key: claim.received_at
        for stored_key, claim in found.values()
        if claim.content_digest is None
    }
    contents = uplinks.select_contents(conn, keys=unknown) if unknown else {}
    for key, (stored_key, claim) in found.items():
        stored_at[key] = claim.received_at
        if claim.content_digest is not None:
            digests[key] = claim.content_digest
        elif (content := contents.get(stored_key)) is not None:
            digests[key] = _digest(content.dev_eui, content.f_port, content.f_cnt, content.payload)
    return digests


def _legacy_keys(items: Iterable[Prepared], until: datetime | None) -> dict[bytes, bytes]:
    """Key -> previous key, for the uplinks that may be stored under their previous key."""
    if until is None:
        return {}
    return {
        u.dedup_key: u.legacy_key
        for item in items
        if (u := item.row.uplink).legacy_key is not None and u.received_at <= until
    }


def _describe(uplink: Uplink) -> str:
    return (
        f"DevEUI {uplink.dev_eui}, f_port {uplink.f_port}, f_cnt {uplink.f_cnt}, "
        f"payload {uplink.payload.hex() or '(empty)'}"
    )


def _conflict(
    item: Prepared, first: Prepared, stored_at: Mapping[bytes, datetime]
) -> DeadLetterRow:
    uplink, message = item.row.uplink, item.message
    key = uplink.dedup_key
    if key in stored_at:
        taken = f"is stored for the uplink received at {stored_at[key].isoformat()}"
    else:
        taken = f"came earlier in the batch for {_describe(first.row.uplink)}"
    return DeadLetterRow(
        received_at=message.arrived_at,
        source=message.source,
        topic=message.topic,
        stage="store",
        reason="dedup_conflict",
        detail=(
            f"dedup key {key.hex()} {taken}, other content than this message's: {_describe(uplink)}"
        ),
        body=message.body,
        dev_eui=uplink.dev_eui,
        dedup_key=key,
    )


def with_decoder_ids(
    conn: psycopg.Connection, items: Sequence[Prepared], decoder_ids: DecoderIds
) -> list[ReadingRow]:
    """Return the readings of `items`, each with its uplink's decoder id."""
    names = {item.row.decoder for item in items if item.row.decoder and item.readings}
    ids = decoder_ids.resolve(conn, names)
    readings: list[ReadingRow] = []
    for item in items:
        if item.readings:
            decoder = item.row.decoder
            decoder_id = ids[decoder] if decoder else None
            # A new row outright: dataclasses.replace costs several times as much.
            readings += [
                ReadingRow(r.time, r.device_id, r.metric, r.value, decoder_id)
                for r in item.readings
            ]
    return readings
