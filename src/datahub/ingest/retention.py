"""Dedup-key retention: a thread of the ingest process that deletes the dedup keys no
uplink can match any more, so that `uplink_dedup` stops growing once it spans
`ingest.max_age_days`.

The ingest refuses an uplink whose received_at is older than `ingest.max_age_days` (a dead
letter, `envelope` stage) before it claims its key, so a key older than that is never
looked up again. Keys a day older still than the limit are deleted, a batch per
transaction, once an hour: the day covers clocks that disagree. Every worker runs one;
the worker that leads the job (ingest/leader.py) deletes, the others ask again each hour.
The stored uplinks themselves are kept.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg

from datahub.config import Settings
from datahub.errors import StorageUnavailable
from datahub.ingest.leader import Leadership
from datahub.storage import uplinks
from datahub.storage.leadership import Job

log = logging.getLogger(__name__)

INTERVAL_S = 3600.0
FIRST_AFTER_S = 60.0  # after start-up, once the ingest is busy with what queued meanwhile
MARGIN = timedelta(days=1)
BATCH = 10_000  # keys per transaction


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DedupRetention:
    """Prune dedup keys past the age limit every `INTERVAL_S` until `stop_event` is set."""

    def __init__(
        self,
        settings: Settings,
        *,
        stop_event: threading.Event,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._settings = settings
        self._stop = stop_event
        self._clock = clock
        self._thread = threading.Thread(target=self._run, name="dedup-retention", daemon=True)
        self.leadership = Leadership(settings, Job.DEDUP_RETENTION)
        self.pruned = 0  # keys deleted since the start

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def cutoff(self) -> datetime:
        """Keys of uplinks received before this are never looked up again."""
        return self._clock() - timedelta(days=self._settings.ingest.max_age_days) - MARGIN

    def _run(self) -> None:
        wait = FIRST_AFTER_S
        while not self._stop.wait(wait):
            wait = INTERVAL_S
            try:
                conn = self.leadership.lead()
                if conn is not None and (pruned := self.prune(conn)):
                    log.info("deleted %d dedup keys older than %s", pruned, self.cutoff())
            except (StorageUnavailable, psycopg.Error) as exc:
                log.warning("pruning dedup keys failed (%s); trying again in an hour", exc)
                self.leadership.drop()
        self.leadership.close()

    def prune(self, conn: psycopg.Connection) -> int:
        """Delete the keys before `cutoff`, a batch per transaction; return how many."""
        before = self.cutoff()
        total = 0
        while not self._stop.is_set():
            with conn.transaction():
                deleted = uplinks.prune_dedup_keys(conn, before=before, limit=BATCH)
            total += deleted
            self.pruned += deleted
            if deleted < BATCH:
                break
        return total
