"""Metering: record what each response serves, per dataset, and hold consumers to their quota.

`Meter.charge` runs after the data is read and before it is sent, and returns once the
usage row and the quota counter are committed durably (in a transaction shared with other
requests' charges, api/writer.py): a response leaves only after its usage is recorded, so
the ledger equals what was served, and a request that would pass the quota is refused
whole (429) instead of answered in part. A request that fails after its charge (it
cannot, short of a crash: what follows only renders) would be counted unserved.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID, uuid4

import psycopg

from datahub.api.auth import Access
from datahub.api.writer import Writes
from datahub.errors import BadRequest, Conflict, TooManyRequests
from datahub.fairshare.close import month_bounds
from datahub.storage import usage

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
    request_id: UUID = field(default_factory=uuid4)
    replayed: bool = False  # a retry of a request already counted
    charged: int = 0

    def charge(self, observations: Mapping[int, int]) -> None:
        """Record `observations` (dataset id -> count) served by this request.

        Raise TooManyRequests, recording nothing, if the caller's monthly quota cannot
        hold them; Conflict if the Idempotency-Key was used for a different request.
        """
        if not self.serves:
            return
        when = self.clock()
        self.ledger.run(
            lambda conn: self._record(conn, observations, when), key=self.caller.subject
        )

    def _record(
        self, conn: psycopg.Connection, observations: Mapping[int, int], now: datetime
    ) -> None:
        if self.idempotency_key is not None:
            earlier = usage.claim_idempotency_key(
                conn,
                subject=self.caller.subject,
                key=self.idempotency_key,
                fingerprint=self.fingerprint,
                request_id=self.request_id,
            )
            if earlier is not None:
                if earlier.fingerprint != self.fingerprint:
                    raise Conflict(
                        "this Idempotency-Key was used for another request; use a new key "
                        "for a new request"
                    )
                self.request_id = earlier.request_id
                self.replayed = True
                return
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
