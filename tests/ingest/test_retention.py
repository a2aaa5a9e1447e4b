"""Dedup-key retention: keys past the ingest's age limit are deleted in batches, the others
kept, and an uplink whose key was deleted is still refused, never stored twice."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from democatalog import demo_catalog
from ingest_builders import SOURCES, message, register
from realservices import Database

import simulators
from datahub.ingest import retention
from datahub.ingest.pipeline import Pipeline
from datahub.ingest.retention import DedupRetention
from datahub.storage import uplinks

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MAX_AGE_DAYS = 3


def key(n: int) -> bytes:
    return hashlib.blake2b(str(n).encode(), digest_size=16).digest()


def remaining(conn: psycopg.Connection) -> list[datetime]:
    rows = conn.execute("SELECT received_at FROM uplink_dedup ORDER BY received_at").fetchall()
    return [at for (at,) in rows]


def test_keys_past_the_age_limit_are_deleted_in_batches(
    conn: psycopg.Connection, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 2)
    ages = [timedelta(days=d) for d in (40, 9, 5, 4.5, 4.01)]  # older than 3 days + 1 day
    ages += [timedelta(days=d) for d in (4, 3.99, 3, 1, 0)]  # kept: at the cutoff or after
    uplinks.claim_keys(conn, keys=[(key(i), NOW - age) for i, age in enumerate(ages)])

    worker = DedupRetention(
        database.settings(ingest={"max_age_days": MAX_AGE_DAYS}),
        stop_event=threading.Event(),
        clock=lambda: NOW,
    )
    assert worker.cutoff() == NOW - timedelta(days=MAX_AGE_DAYS + 1)
    assert worker.prune(conn) == 5  # three transactions: 2, 2, 1
    assert remaining(conn) == sorted(NOW - age for age in ages[5:])
    assert worker.prune(conn) == 0
    assert worker.pruned == 5

    # The keys left still tell a redelivery from a new uplink; the deleted ones are free.
    assert uplinks.claim_keys(conn, keys=[(key(5), NOW - ages[5])]) == set()
    assert uplinks.claim_keys(conn, keys=[(key(0), NOW - ages[0])]) == {key(0)}


def test_an_uplink_whose_key_could_be_deleted_is_refused_before_its_key_is_claimed(
    conn: psycopg.Connection, database: Database
) -> None:
    settings = database.settings(sources=SOURCES, ingest={"max_age_days": MAX_AGE_DAYS})
    worker = DedupRetention(settings, stop_event=threading.Event(), clock=lambda: NOW)
    scenario = simulators.load_scenario()
    register(conn, scenario)
    sims = simulators.generate(scenario, seed=7, start=worker.cutoff(), count=20)
    old = [s for s in sims if s.time < worker.cutoff() + timedelta(days=1)]
    assert old
    stored = Pipeline(settings, catalog=demo_catalog(), clock=lambda: NOW).process(
        conn, [message(s) for s in old]
    )
    assert (stored.uplinks, stored.dead_letters) == (0, len(old))
    assert remaining(conn) == []
