"""Leader election of the ingest's singleton jobs: one worker leads each job, and another
takes over when the leader's session ends, however it ends."""

from __future__ import annotations

import psycopg
import pytest
from realservices import Database
from replicaset import wait_until

from datahub.ingest.leader import Leadership
from datahub.storage import leadership
from datahub.storage.leadership import Job


def worker(database: Database, name: str, job: Job = Job.ROLLUPS) -> Leadership:
    return Leadership(database.settings(ingest={"worker": name}), job)


def takes_over(follower: Leadership) -> None:
    """Wait until `follower` leads: the server releases a lock once the session's backend
    has ended, a moment after the client's connection closed."""
    wait_until("the follower to lead", lambda: follower.lead() is not None, 10, every=0.02)


def leaders(database: Database) -> dict[Job, str]:
    with psycopg.connect(database.url) as conn:
        return leadership.list_leaders(conn)


def test_one_worker_leads_each_job_and_another_takes_over_when_it_leaves(
    database: Database,
) -> None:
    a, b = worker(database, "a"), worker(database, "b")
    try:
        assert a.lead() is not None
        assert b.lead() is None  # asked again and again while a leads
        assert b.lead() is None
        assert a.lead() is not None  # the leader keeps its connection and its lock
        assert leaders(database)[Job.ROLLUPS] == "datahub-ingest-a/rollups"

        a.close()
        takes_over(b)
        assert leaders(database)[Job.ROLLUPS] == "datahub-ingest-b/rollups"
        assert (a.lead(), b.elected, a.elected) == (None, 1, 1)
    finally:
        a.close()
        b.close()


def test_jobs_are_led_independently(database: Database) -> None:
    rollups, retention = worker(database, "a"), worker(database, "b", Job.DEDUP_RETENTION)
    try:
        assert rollups.lead() is not None and retention.lead() is not None
        assert leaders(database) == {
            Job.ROLLUPS: "datahub-ingest-a/rollups",
            Job.DEDUP_RETENTION: "datahub-ingest-b/dedup-retention",
        }
    finally:
        rollups.close()
        retention.close()


def test_a_leader_whose_session_ends_loses_the_job_to_another(database: Database) -> None:
    """The session ends on the server (a crash, a network cut noticed by the server, an
    administrator): the lock goes with it, and the old leader finds out at its next
    statement and must ask again like any other worker."""
    a, b = worker(database, "a"), worker(database, "b")
    try:
        conn = a.lead()
        assert conn is not None and b.lead() is None
        with psycopg.connect(database.url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'datahub-ingest-a/rollups'"
            )
        takes_over(b)
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
        a.drop()
        assert a.lead() is None
        assert leaders(database)[Job.ROLLUPS] == "datahub-ingest-b/rollups"
    finally:
        a.close()
        b.close()


def test_a_broken_connection_is_replaced_before_asking(database: Database) -> None:
    a = worker(database, "a")
    try:
        conn = a.lead()
        assert conn is not None
        conn.close()
        again = a.lead()
        assert again is not None and again is not conn
    finally:
        a.close()
