"""The callers an API process remembers: a revoked key or a new grant takes effect within
`fairshare.key_cache_s`, and a remembered key still has to match."""

from __future__ import annotations

import psycopg
import pytest
from access_world import consumer, dataset
from api_helpers import Seed

from datahub.api.auth import Callers
from datahub.config import FairShareSettings
from datahub.errors import Unauthorized
from datahub.fairshare import admin, keys
from datahub.storage import consumers

SETTINGS = FairShareSettings()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_revoked_key_is_refused_once_its_memory_runs_out(
    conn: psycopg.Connection, seed: Seed
) -> None:
    _, secret = consumer(conn, "app", purpose="research")
    clock = Clock()
    callers = Callers(5, clock=clock)
    first = callers.resolve(conn, secret, SETTINGS, client="c")
    prefix = keys.parse_prefix(secret)
    assert prefix is not None
    admin.revoke_key(conn, actor="cli:test", prefix=prefix)

    clock.now += 4.9
    remembered = callers.remembered(secret, client="c")
    clock.now += 0.2
    forgotten = callers.remembered(secret, client="c")

    assert remembered == first
    assert forgotten is None
    with pytest.raises(Unauthorized, match="revoked"):
        callers.resolve(conn, secret, SETTINGS, client="c")


def test_a_new_grant_shows_once_the_memory_runs_out(conn: psycopg.Connection, seed: Seed) -> None:
    consumer_id, secret = consumer(conn, "app", purpose="research")
    parking = dataset(conn, seed, "sws-parking", "restricted")
    clock = Clock()
    callers = Callers(5, clock=clock)
    before = callers.resolve(conn, secret, SETTINGS, client="c")
    consumers.insert_grant(conn, consumer_id=consumer_id, dataset_id=parking)

    clock.now += 5.1
    assert callers.remembered(secret, client="c") is None
    after = callers.resolve(conn, secret, SETTINGS, client="c")

    assert before.dataset_ids is not None and parking not in before.dataset_ids
    assert after.dataset_ids is not None and parking in after.dataset_ids


def test_a_remembered_prefix_with_another_secret_is_not_the_caller(
    conn: psycopg.Connection, seed: Seed
) -> None:
    _, secret = consumer(conn, "app", purpose="research")
    callers = Callers(5, clock=Clock())
    callers.resolve(conn, secret, SETTINGS, client="c")
    forged = secret[:-1] + ("A" if secret[-1] != "A" else "B")

    assert callers.remembered(forged, client="c") is None
    with pytest.raises(Unauthorized, match="not known"):
        callers.resolve(conn, forged, SETTINGS, client="c")


def test_anonymous_callers_are_remembered_per_address_and_nothing_with_a_memory_of_0(
    conn: psycopg.Connection, seed: Seed
) -> None:
    callers = Callers(5, clock=Clock())
    callers.resolve(conn, None, SETTINGS, client="10.0.0.1")
    other = callers.remembered(None, client="10.0.0.2")

    assert other is not None and other.subject == "ip:10.0.0.2" and other.anonymous
    none_kept = Callers(0)
    none_kept.resolve(conn, None, SETTINGS, client="10.0.0.1")
    assert none_kept.remembered(None, client="10.0.0.1") is None
