"""Leader election among the ingest workers, for the jobs one of them at a time runs.

Every worker runs every job's thread; a thread works only while its worker leads the job,
that is while a connection of the thread's own holds the job's session-level advisory
lock (storage/leadership.py). The lock lives as long as that server session, so a leader
that exits, crashes or is killed, or whose connection is lost or frozen (ended by the
client's response timeout, storage/db.py), leaves the job to whichever worker asks next:
each thread asks at every round while it does not lead. Nothing else coordinates the
workers, and a database restart elects a leader again.

The connection must reach the server itself (or a pooler in session mode): PgBouncer in
transaction mode cannot keep a session's lock.
"""

from __future__ import annotations

import logging

import psycopg

from datahub.config import Settings
from datahub.storage import db, leadership
from datahub.storage.leadership import Job

log = logging.getLogger(__name__)


def process_name(settings: Settings) -> str:
    """The ingest worker's connections' application name: `datahub-ingest[-<worker>]`."""
    worker = settings.ingest.worker
    return f"{db.APPLICATION_NAME}-ingest" + (f"-{worker}" if worker else "")


class Leadership:
    """One job's leadership by this worker, on a connection kept for the job's work."""

    def __init__(self, settings: Settings, job: Job) -> None:
        self._settings = settings
        self.job = job
        self.application_name = f"{process_name(settings)}/{job.label}"
        self._conn: psycopg.Connection | None = None
        self.leading = False
        self.elected = 0  # times this worker became the leader

    def lead(self) -> psycopg.Connection | None:
        """Return the connection that holds the job's lock, taking the lock if it is free;
        None while another worker leads.

        Raises StorageUnavailable or a psycopg.Error when the database fails: then `drop`.
        """
        conn = self._conn
        if conn is not None and (conn.closed or conn.broken):
            self.drop()
            conn = None
        if conn is None:
            conn = self._conn = db.connect(
                self._settings, autocommit=True, application_name=self.application_name
            )
        if self.leading:
            return conn
        if not leadership.try_lead(conn, job=self.job):
            return None
        self.leading = True
        self.elected += 1
        log.info("this worker leads %s (%s)", self.job.label, self.application_name)
        return conn

    def drop(self) -> None:
        """Close the connection after a failure: the lock goes with its session."""
        if self.leading:
            log.warning("this worker no longer leads %s: its connection failed", self.job.label)
        self.close()

    def close(self) -> None:
        """Close the connection, and so give the job up (at the worker's end)."""
        conn, self._conn = self._conn, None
        self.leading = False
        if conn is not None:
            conn.close()
