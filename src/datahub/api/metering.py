"""Metering: record what each response serves, per dataset, and hold consumers to their quota.

`Meter.charge` runs after every read of the request (a route reads nothing after it) and
before the answer is sent, and returns once the usage row and the quota counter are
committed durably (in a transaction shared with other requests' charges, api/writer.py):
a response leaves only after its usage is recorded, so the ledger equals what was served,
and a request that would pass the quota is refused whole (429) instead of answered in
part. A request that fails after its charge (it cannot, short of a crash: what follows
only renders, and a lost database connection, of a replica say, fails a read before it)
would be counted unserved.

A request with an `Idempotency-Key` is charged with its answer instead: once rendered,
one transaction claims the key, keeps the answer (status, headers, body) and records the
usage, before the answer leaves (api/replay.py). A retry within
`fairshare.idempotency_keys_kept_s` gets that answer again, byte for byte, and is not
charged: what was charged is what it gets, never data read anew.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import psycopg

from datahub.api.auth import Access
from datahub.api.writer import Writes
from datahub.errors import BadRequest, Conflict, TooManyRequests
from datahub.fairshare.close import month_bounds
from datahub.storage import usage
from datahub.storage.usage import Answer

# RFC 9110 token characters, at most 255 of them: keys are opaque, e.g. a UUID.
_IDEMPOTENCY_KEY = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,255}$")


@dataclass
class Meter:
    """Charges one request's observations to its caller; made per request by `deps`."""

    ledger: Writes
    caller: Access
    endpoint: str
    fingerprint: str  # method, path and query: what an Idempotency-Key must repeat
    idempotency_key: str | None
    serves: bool = True  # False for a HEAD request: it sends no observation
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    keys_kept_s: int = 86_400  # how long a key and its answer are kept
    request_id: UUID = field(default_factory=uuid4)
    replayed: bool = False  # a retry of a request already counted
    charged: int = 0
    # What a request with an Idempotency-Key served: charged with its answer (`settle`).
    pending: dict[int, int] | None = None

    def charge(self, observations: Mapping[int, int]) -> None:
        """Record `observations` (dataset id -> count) served by this request.

        Raise TooManyRequests, recording nothing, if the caller's monthly quota cannot
        hold them. A request with an Idempotency-Key is charged later, with its answer
        (`settle`).
        """
        if not self.serves:
            return
        if self.idempotency_key is not None:
            self.pending = dict(observations)
            return
        when = self.clock()
        self.ledger.run(
            lambda conn: self._record(conn, observations, when), key=self.caller.subject
        )

    def earlier_answer(self, conn: psycopg.Connection) -> Answer | None:
        """Return the answer kept for this request's Idempotency-Key, if it has one.

        Conflict if the key was used for another request.
        """
        if self.idempotency_key is None or not self.serves:
            return None
        earlier = usage.find_idempotency_key(
            conn,
            subject=self.caller.subject,
            key=self.idempotency_key,
            kept_since=self._kept_since(),
        )
        if earlier is None:
            return None
        self._same_request(earlier)
        return earlier.answer

    async def settle(self, answer: Answer) -> Answer:
        """Claim the Idempotency-Key with `answer` and charge what it serves, in one
        transaction; return the answer to send: this one, or the one the key's first
        request got (nothing charged then).

        Raise TooManyRequests over the quota, Conflict for a key used for another request:
        nothing is kept or charged then.
        """
        assert self.pending is not None and self.idempotency_key is not None
        pending, key, now = self.pending, self.idempotency_key, self.clock()

        def claim(conn: psycopg.Connection) -> Answer:
            earlier = usage.claim_idempotency_key(
                conn,
                subject=self.caller.subject,
                key=key,
                fingerprint=self.fingerprint,
                request_id=self.request_id,
                answer=answer,
                now=now,
                kept_since=self._kept_since(now),
            )
            if earlier is not None:
                self._same_request(earlier)
                self.request_id, self.replayed = earlier.request_id, True
                return earlier.answer
            self._record(conn, pending, now)
            return answer

        return await self.ledger.run_async(claim, key=self.caller.subject)

    def _kept_since(self, now: datetime | None = None) -> datetime:
        return (now or self.clock()) - timedelta(seconds=self.keys_kept_s)

    def _same_request(self, earlier: usage.IdempotencyRow) -> None:
        if earlier.fingerprint != self.fingerprint:
            raise Conflict(
                "this Idempotency-Key was used for another request; use a new key for a new request"
            )

    def _record(
        self, conn: psycopg.Connection, observations: Mapping[int, int], now: datetime
    ) -> None:
        charge = usage.charge_usage(
            conn,
            request_id=self.request_id,
            consumer_id=self.caller.consumer_id,
            purpose=self.caller.purpose.value,
            endpoint=self.endpoint,
            observations=observations,
            occurred_at=now,
        )
        total = sum(n for n in observations.values() if n > 0)
        if not charge.recorded:
            assert self.caller.consumer_id is not None and charge.quota is not None
            used = usage.get_quota_used(
                conn, consumer_id=self.caller.consumer_id, month=month_bounds(now)[0].date()
            )
            raise TooManyRequests(
                f"this request would serve {total} observations, more than the "
                f"{max(charge.quota - used, 0)} left of the monthly quota of {charge.quota}; "
                "narrow it, or wait for the next month",
                retry_after=seconds_to_next_month(now),
            )
        self.charged = total


def check_idempotency_key(value: str | None) -> str | None:
    """Return a well-formed Idempotency-Key, None for none; 400 for a malformed one."""
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.match(value):
        raise BadRequest(
            "Idempotency-Key must be 1 to 255 token characters (letters, digits, -._~ …), "
            "e.g. a UUID"
        )
    return value


def count_by_dataset(dataset_ids: Iterable[int], *, weight: int = 1) -> dict[int, int]:
    """Count observations per dataset: `weight` for each occurrence of a dataset id."""
    return {dataset_id: n * weight for dataset_id, n in Counter(dataset_ids).items()}


def seconds_to_next_month(now: datetime) -> int:
    """Whole seconds, rounded up, until the next calendar month begins (UTC)."""
    _, next_month = month_bounds(now)
    return max(1, math.ceil((next_month - now).total_seconds()))
