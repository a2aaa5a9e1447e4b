"""Who is calling: an API key's consumer, or an anonymous caller; and the rate limit.

A key comes as `Authorization: Bearer dh_…` or `X-API-Key: dh_…`. No key means an
anonymous caller, who reads open datasets only, for public-interest use. A key that is
malformed, unknown or revoked is a 401, never silently anonymous: a client should know
its key is wrong.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from datahub import audit
from datahub.api.writer import Together, Writes
from datahub.config import FairShareSettings
from datahub.domain import Purpose
from datahub.errors import Forbidden, TooManyRequests, Unauthorized
from datahub.fairshare import keys
from datahub.fairshare.keys import Scope
from datahub.storage import access

# One batch of rate slots in this many also clears out old rate windows.
_CLEANUP_ONE_IN = 200
# Keys remembered per process at most; past it the memory starts afresh (an attacker
# sending random prefixes cannot grow it without bound).
_MAX_KEYS_KEPT = 10_000


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
    # Those it holds a grant for (or its supplier's own): their protected devices shown as
    # they are (datahub/privacy.py). None: every dataset (admin).
    granted_ids: frozenset[int] | None
    subject: str  # whom the rate limit and idempotency keys belong to
    key_prefix: str | None = None  # None: anonymous

    @property
    def actor(self) -> str:
        """Who makes a change with this key, for the audit log."""
        assert self.key_prefix is not None, "anonymous callers change nothing"
        return audit.key_actor(self.key_prefix)

    @property
    def anonymous(self) -> bool:
        return self.consumer_id is None

    @property
    def is_admin(self) -> bool:
        return Scope.ADMIN in self.scopes

    @property
    def is_ombudsman(self) -> bool:
        return Scope.OMBUDSMAN in self.scopes

    @property
    def oversees(self) -> bool:
        """Whether the caller reads what every supplier and consumer did (admin, ombudsman)."""
        return self.is_admin or self.is_ombudsman

    def as_public(self) -> Access:
        """The same caller, metered as anonymous public-interest use (open-data downloads)."""
        return dataclasses.replace(
            self,
            consumer_id=None,
            consumer_slug=None,
            purpose=Purpose.PUBLIC_INTEREST,
            monthly_quota=None,
            granted_ids=frozenset(),
        )

    def require(self, scope: Scope) -> None:
        """Refuse the request unless the key has `scope`: 401 without a key, 403 with one."""
        if scope in self.scopes:
            return
        if self.anonymous:
            raise Unauthorized(
                f"this needs an API key with the {scope.value!r} scope; none was sent"
            )
        raise Forbidden(
            f"this needs an API key with the {scope.value!r} scope; the key of "
            f"{self.consumer_slug} has none"
        )


def presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """Return the key from `Authorization: Bearer …` or `X-API-Key`, or None for none.

    None only when neither header is sent: a header sent without a key, or two headers
    with different keys, is a client's mistake and a 401, never an anonymous call.
    """
    from_api_key = from_bearer = None
    if api_key is not None:
        from_api_key = api_key.strip()
        if not from_api_key:
            raise Unauthorized(
                "X-API-Key is empty; send your key in it, or leave the header out to call "
                "anonymously"
            )
    if authorization is not None:
        scheme, _, credentials = authorization.strip().partition(" ")
        from_bearer = credentials.strip()
        if scheme.lower() != "bearer" or not from_bearer:
            raise Unauthorized("Authorization must be 'Bearer <API key>'")
    if from_api_key is not None and from_bearer is not None and from_api_key != from_bearer:
        raise Unauthorized("Authorization and X-API-Key hold two different keys; send one")
    return from_api_key if from_api_key is not None else from_bearer


class Callers:
    """The callers this process resolved lately, by key prefix (and the open datasets, for
    anonymous callers), kept `fairshare.key_cache_s` seconds: most requests then send the
    database no statement to learn who calls. A key revoked, or a grant changed, takes
    effect within that time; 0 keeps nothing."""

    def __init__(self, ttl_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        # prefix -> (until, key hash, the caller; None: no such key); "" is anonymous
        self._kept: dict[str, tuple[float, bytes, Access | None]] = {}

    def remembered(self, secret: str | None, *, client: str) -> Access | None:
        """Return the caller if it is remembered and the key matches; None: resolve it."""
        prefix = "" if secret is None else keys.parse_prefix(secret)
        kept = self._kept.get(prefix) if prefix is not None else None
        if kept is None or kept[0] <= self._clock():
            return None
        _, key_hash, caller = kept
        if secret is None:
            assert caller is not None
            return dataclasses.replace(caller, subject=f"ip:{client}")
        if caller is None or not keys.matches(secret, key_hash):
            return None  # resolved again: the same answer as without the memory
        return caller

    def resolve(
        self,
        conn: psycopg.Connection,
        secret: str | None,
        settings: FairShareSettings,
        *,
        client: str,
    ) -> Access:
        """Resolve the caller on `conn` and remember it; Unauthorized for a bad key."""
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
                granted_ids=frozenset(),
                subject=f"ip:{client}",
            )
            self._keep("", b"", caller)
            return caller
        prefix = keys.parse_prefix(secret)
        if prefix is None:
            raise Unauthorized("the API key is malformed; keys look like dh_<12 characters>_<43>")
        row = access.get_key(conn, prefix=prefix)
        if row is None or not keys.matches(secret, row.key_hash):
            raise Unauthorized("the API key is not known")
        if row.revoked_at is not None:
            raise Unauthorized("the API key has been revoked")
        caller = _consumer(row, settings, prefix=prefix)
        self._keep(prefix, row.key_hash, caller)
        return caller

    def _keep(self, prefix: str, key_hash: bytes, caller: Access) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._kept) >= _MAX_KEYS_KEPT:
            self._kept.clear()
        self._kept[prefix] = (self._clock() + self.ttl_s, key_hash, caller)


def _take_rate_slots(conn: psycopg.Connection, asked: list[tuple[str, int]]) -> list[bool | None]:
    if random.randrange(_CLEANUP_ONE_IN) == 0:
        access.delete_old_rate_windows(conn)
    return list(access.take_rate_slots(conn, asked))


# Every rate slot of a batch of requests, in one statement (api/writer.py).
RATE_SLOTS: Together[tuple[str, int], bool] = Together(_take_rate_slots)


async def take_rate_slot(caller: Access, *, rates: Writes) -> None:
    """Take one slot of the caller's rate limit, on the database every process shares;
    TooManyRequests (429) over it."""
    asked = (caller.subject, caller.requests_per_s)
    take = functools.partial(
        access.take_rate_slot, subject=caller.subject, limit=caller.requests_per_s
    )
    if not await rates.run_async(take, key=caller.subject, together=RATE_SLOTS, item=asked):
        raise TooManyRequests(
            f"over the rate limit of {caller.requests_per_s} requests per second"
            + (" for anonymous callers; an API key raises it" if caller.anonymous else ""),
            retry_after=1,
        )


def _consumer(row: access.KeyRow, settings: FairShareSettings, *, prefix: str) -> Access:
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
        granted_ids=None if Scope.ADMIN in scopes else frozenset(row.granted_ids),
        subject=f"consumer:{row.consumer_id}",
        key_prefix=prefix,
    )
