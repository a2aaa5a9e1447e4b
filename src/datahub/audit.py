"""The audit log: who changed what, when, from what to what, in a chain nobody can rewrite.

Every administrative change appends one entry in the transaction of the change (so no
change commits without it). An entry is

    {"seq": n, "at": "YYYY-MM-DDTHH:MM:SS.ffffffZ", "actor": …, "action": …, "target": …,
     "before": JSON or null, "after": JSON or null}

and its hash is SHA-256(previous entry's hash ‖ canonical(entry)), the previous hash of
entry 1 being 32 zero bytes. canonical(x) is x as UTF-8 JSON with the keys of every object
sorted by code point, no whitespace, non-ASCII characters as themselves and numbers as
integers or in their shortest round-trip form (Python's `json.dumps(x, sort_keys=True,
separators=(",", ":"), ensure_ascii=False)`); docs/fair-share.md says it for other tools.
Appends are serialised by a lock (storage/audit.py), so the chain never forks; `seq` counts
without a gap, so a deleted entry shows as a gap.

Actors: `key:<prefix>` for an API key, `cli:<OS user>` for the command line, which
`datahub --as NAME` extends to `cli:<OS user> as NAME` (the OS user stays: a name given on
the command line is a claim, the account is a fact); `migration:<revision>` for a
migration that changes administrative records. The secret of a key and its hash are never
recorded.
"""

from __future__ import annotations

import dataclasses
import enum
import getpass
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from datahub.storage import audit as store
from datahub.storage.audit import GENESIS, StoredEntry

# Python writes an integral float from this size on with an exponent (repr(1e16) == "1e+16").
_EXPONENT_FROM = 1e16


def cli_actor(claimed: str | None = None) -> str:
    """Return the actor of a command run by this OS user, as `claimed` if given."""
    user = getpass.getuser()
    return f"cli:{user} as {claimed}" if claimed else f"cli:{user}"


def key_actor(prefix: str) -> str:
    """Return the actor of an API request made with the key of `prefix`."""
    return f"key:{prefix}"


def jsonable(value: Any) -> Any:
    """Return `value` (records, times, enums, tuples) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items, key=canonical) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("bytes are not recorded in the audit log (key hashes least of all)")
    if isinstance(value, float) and value.is_integer() and abs(value) >= _EXPONENT_FROM:
        # jsonb keeps 1e+16 as the integer 10000000000000000, which reads back as an int:
        # recorded as that int, the entry hashes the same when it is read back.
        return int(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot record a {type(value).__name__} in the audit log")


def timestamp(value: datetime) -> str:
    """Format a time as the log does: UTC, microseconds, `Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(value: Any) -> bytes:
    """Serialise JSON values canonically (see the module's docstring)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def entry_body(
    *, seq: int, at: datetime, actor: str, action: str, target: str, before: Any, after: Any
) -> dict[str, Any]:
    """Return the object an entry's hash is computed over."""
    return {
        "seq": seq,
        "at": timestamp(at),
        "actor": actor,
        "action": action,
        "target": target,
        "before": before,
        "after": after,
    }


def chain_hash(prev_hash: bytes, body: Mapping[str, Any]) -> bytes:
    """Return SHA-256(prev_hash ‖ canonical(body))."""
    return hashlib.sha256(prev_hash + canonical(body)).digest()


def record(
    conn: psycopg.Connection,
    *,
    actor: str,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
) -> StoredEntry:
    """Append an entry for a change made in `conn`'s open transaction; return it."""
    before, after = jsonable(before), jsonable(after)
    head = store.lock_head(conn)
    fields: dict[str, Any] = {
        "seq": head.seq + 1,
        "at": head.now,
        "actor": actor,
        "action": action,
        "target": target,
        "before": before,
        "after": after,
    }
    entry = StoredEntry(
        **fields, prev_hash=head.hash, hash=chain_hash(head.hash, entry_body(**fields))
    )
    store.insert_entry(conn, entry=entry)
    return entry


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a walk along the chain found: the entries checked, the head, the first break."""

    entries: int
    head_seq: int
    head_hash: bytes
    broken_at: int | None = None  # seq of the first entry that does not hold
    reason: str | None = None

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def verify(entries: Iterable[StoredEntry]) -> Verdict:
    """Walk the chain in seq order; stop at the first link that does not hold."""
    expected, prev, count = 1, GENESIS, 0
    for entry in entries:
        fault = _fault(entry, expected=expected, prev=prev)
        if fault is not None:
            return Verdict(count, expected - 1, prev, broken_at=fault[0], reason=fault[1])
        count += 1
        prev, expected = entry.hash, expected + 1
    return Verdict(count, expected - 1, prev)


def _fault(entry: StoredEntry, *, expected: int, prev: bytes) -> tuple[int, str] | None:
    if entry.seq != expected:
        return expected, f"entry {expected} is missing (the next one stored is {entry.seq})"
    if entry.prev_hash != prev:
        return entry.seq, (
            f"entry {entry.seq} names {entry.prev_hash.hex()} as its predecessor's hash, "
            f"but entry {entry.seq - 1} hashes to {prev.hex()}"
        )
    body = entry_body(
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        before=entry.before,
        after=entry.after,
    )
    if chain_hash(prev, body) != entry.hash:
        return entry.seq, f"entry {entry.seq}'s content does not match its hash"
    return None
