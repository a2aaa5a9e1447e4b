"""Metering: record what each response serves, per dataset, and hold consumers to their quota.

A route calls `Meter.charge` with what it serves once it has read everything; the request
is charged with its answer (api/replay.py), once the route has returned and its database
connection has gone back to the pool: when a successful answer starts, the usage row and
the quota counter are committed durably (in a statement or transaction shared with other
requests' charges, api/writer.py) before a byte of it leaves. So the ledger equals what
was served, a request that would pass the quota is refused whole (429) instead of answered
in part, a request that fails before its answer is charged nothing, and no connection is
held while the charge commits.

A request with an `Idempotency-Key` is charged with its whole answer: once rendered, one
transaction claims the key, keeps the answer (status, headers, body) and records the
usage, before the answer leaves. A retry within
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
from datahub.api.writer import Together, Writes
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
        """Note `observations` (dataset id -> count) as what this request serves: charged
        with its answer (`charge_now`, or `settle` with an Idempotency-Key)."""
        if self.serves:
            self.pending = dict(observations)

    async def charge_now(self) -> None:
        """Charge what the request serves, once its answer is ready to leave.

        Raise TooManyRequests, recording nothing, if the caller's monthly quota cannot
        hold it.
        """
        assert self.pending is not None
        asked = self._usage(self.pending, self.clock())
        self.charged = await self.ledger.run_async(
            lambda conn: self._record(conn, asked),
            key=self.caller.subject,
            together=CHARGES,
            item=asked,
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
            self._record(conn, self._usage(pending, now))
            return answer

        return await self.ledger.run_async(claim, key=self.caller.subject)

    def _kept_since(self, now: datetime | None = None) -> datetime:
        return (now or self.clock()) - timedelta(seconds=self.keys_kept_s)

    def _same_request(self, earlier: usage.IdempotencyRow) -> None:
        if earlier.fingerprint != self.fingerprint:
            raise Conflict(
                "this Idempotency-Key was used for another request; use a new key for a new request"
            )

    def _usage(self, observations: Mapping[int, int], now: datetime) -> usage.Usage:
        return usage.Usage(
            request_id=self.request_id,
            consumer_id=self.caller.consumer_id,
            purpose=self.caller.purpose.value,
            endpoint=self.endpoint,
            observations=observations,
            occurred_at=now,
        )

    def _record(self, conn: psycopg.Connection, asked: usage.Usage) -> int:
        """Charge `asked` alone; return the observations charged. TooManyRequests over the
        quota."""
        charge = usage.charge_all(conn, [asked])[0]
        if not charge.recorded:
            assert self.caller.consumer_id is not None and charge.quota is not None
            used = usage.get_quota_used(
                conn,
                consumer_id=self.caller.consumer_id,
                month=month_bounds(asked.occurred_at)[0].date(),
            )
            raise TooManyRequests(
                f"this request would serve {asked.total} observations, more than the "
                f"{max(charge.quota - used, 0)} left of the monthly quota of {charge.quota}; "
                "narrow it, or wait for the next month",
                retry_after=seconds_to_next_month(asked.occurred_at),
            )
        self.charged = asked.total
        return asked.total


def _charge_all(conn: psycopg.Connection, asked: list[usage.Usage]) -> list[int | None]:
    # A request the quota refused together with others of its consumer runs alone.
    charges = usage.charge_all(conn, asked)
    return [
        one.total if charge.recorded else None for one, charge in zip(asked, charges, strict=True)
    ]


# The charges of a batch of requests, in one statement (api/writer.py).
CHARGES: Together[usage.Usage, int] = Together(_charge_all)


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
