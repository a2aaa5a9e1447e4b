"""Who is calling: an API key's consumer, or an anonymous caller; and the rate limit.

A key comes as `Authorization: Bearer dh_…` or `X-API-Key: dh_…`. No key means an
anonymous caller, who reads open datasets only, for public-interest use. A key that is
malformed, unknown or revoked is a 401, never silently anonymous: a client should know
its key is wrong.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from enum import StrEnum

import psycopg

from datahub.config import FairShareSettings
from datahub.domain import Purpose
from datahub.errors import Forbidden, TooManyRequests, Unauthorized
from datahub.fairshare import keys
from datahub.storage import access

# One request in this many also clears out old rate windows.
_CLEANUP_ONE_IN = 500


class Scope(StrEnum):
    """What a key may do: read data and its own usage, or administer the hub."""

    READ = "read"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Access:
    """The caller of one request and what it may see."""

    consumer_id: int | None  # None: anonymous
    consumer_slug: str | None
    purpose: Purpose
    scopes: frozenset[Scope]
    supplier_id: int | None  # the supplier a consumer acts for, if any
    monthly_quota: int | None  # observations per calendar month (UTC); None: no quota
    requests_per_s: int
    dataset_ids: tuple[int, ...] | None  # None: every dataset (admin)
    subject: str  # whom the rate limit and idempotency keys belong to

    @property
    def anonymous(self) -> bool:
        return self.consumer_id is None

    @property
    def is_admin(self) -> bool:
        return Scope.ADMIN in self.scopes

    def as_public(self) -> Access:
        """The same caller, metered as anonymous public-interest use (open-data downloads)."""
        return dataclasses.replace(
            self,
            consumer_id=None,
            consumer_slug=None,
            purpose=Purpose.PUBLIC_INTEREST,
            monthly_quota=None,
        )

    def require(self, scope: Scope) -> None:
        """Refuse the request unless the key has `scope`."""
        if scope not in self.scopes:
            who = "an anonymous caller" if self.anonymous else f"key of {self.consumer_slug}"
            raise Forbidden(f"this needs an API key with the {scope.value!r} scope; {who} has none")


def presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """Return the key from `Authorization: Bearer …` or `X-API-Key`, or None for none."""
    if api_key:
        return api_key.strip()
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise Unauthorized("Authorization must be 'Bearer <API key>'")
        return credentials.strip()
    return None


def authenticate(
    conn: psycopg.Connection,
    *,
    secret: str | None,
    client: str,
    settings: FairShareSettings,
) -> Access:
    """Resolve the caller of a request and take one slot of its rate limit.

    `client` is the caller's address, the anonymous callers' rate-limit subject.
    Run it before the request's own transaction, in autocommit or a short transaction of
    its own: the rate slot's row lock lasts until its commit.
    """
    if secret is None:
        caller = Access(
            consumer_id=None,
            consumer_slug=None,
            purpose=Purpose.PUBLIC_INTEREST,
            scopes=frozenset({Scope.READ}),
            supplier_id=None,
            monthly_quota=None,
            requests_per_s=settings.anonymous_requests_per_s,
            dataset_ids=access.select_open_datasets(conn),
            subject=f"ip:{client}",
        )
    else:
        caller = _consumer(conn, secret, settings)
    if random.randrange(_CLEANUP_ONE_IN) == 0:
        access.delete_old_rate_windows(conn)
    if not access.take_rate_slot(conn, subject=caller.subject, limit=caller.requests_per_s):
        raise TooManyRequests(
            f"over the rate limit of {caller.requests_per_s} requests per second"
            + (" for anonymous callers; an API key raises it" if caller.anonymous else ""),
            retry_after=1,
        )
    return caller


def _consumer(conn: psycopg.Connection, secret: str, settings: FairShareSettings) -> Access:
    prefix = keys.parse_prefix(secret)
    if prefix is None:
        raise Unauthorized("the API key is malformed; keys look like dh_<12 characters>_<43>")
    row = access.get_key(conn, prefix=prefix)
    if row is None or not keys.matches(secret, row.key_hash):
        raise Unauthorized("the API key is not known")
    if row.revoked_at is not None:
        raise Unauthorized("the API key has been revoked")
    scopes = frozenset(Scope(s) for s in row.scopes)
    return Access(
        consumer_id=row.consumer_id,
        consumer_slug=row.consumer_slug,
        purpose=Purpose(row.purpose),
        scopes=scopes,
        supplier_id=row.supplier_id,
        monthly_quota=row.monthly_quota,
        requests_per_s=row.requests_per_s or settings.consumer_requests_per_s,
        dataset_ids=None if Scope.ADMIN in scopes else row.dataset_ids,
        subject=f"consumer:{row.consumer_id}",
    )
