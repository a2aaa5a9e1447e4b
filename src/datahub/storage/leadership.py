"""Leadership of the jobs one ingest worker at a time runs: session-level advisory locks.

A worker leads a job while one of its sessions holds the job's lock. The server releases
the lock when that session ends, however it ends: the worker's exit, a crash or a SIGKILL
(the kernel closes its sockets), its connection lost, or the session terminated. Locks of
the two-key form (`pg_advisory_lock(int, int)`) under a namespace of datahub's own, so
they cannot meet another application's one-key locks; they are per database.

A session lock needs the session: it cannot be taken through a pooler in transaction mode
(PgBouncer), which hands each transaction to any server connection.
"""

from __future__ import annotations

from enum import IntEnum

import psycopg

# The advisory locks' first key ("data"): every leadership lock is (NAMESPACE, job).
NAMESPACE = 0x64617461


class Job(IntEnum):
    """The jobs with a leader; the value is the lock's second key, never to be reused."""

    ROLLUPS = 1
    DEDUP_RETENTION = 2
    OPS_MAINTENANCE = 3  # device health and the alarm scheduler (ops/worker.py)
    ALERT_DELIVERY = 4

    @property
    def label(self) -> str:
        """The job's name in logs, metrics and application names."""
        return self.name.lower().replace("_", "-")


def try_lead(conn: psycopg.Connection, *, job: Job) -> bool:
    """Take the job's lock for this session if no session holds it; return whether taken.

    Taking it again in the session that holds it succeeds.
    """
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (NAMESPACE, int(job))).fetchone()
    return bool(row and row[0])


def list_leaders(conn: psycopg.Connection) -> dict[Job, str]:
    """Return the application name of the session leading each job that has a leader."""
    rows = conn.execute(
        """
        SELECT l.objid, a.application_name
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.classid = %s::oid
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """,
        (NAMESPACE,),
    ).fetchall()
    known = {int(job) for job in Job}
    return {Job(objid): str(name) for objid, name in rows if objid in known}
