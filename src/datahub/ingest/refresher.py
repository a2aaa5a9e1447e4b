"""The rollup refresher: a thread of the ingest process that recomputes the hours and days
whose readings changed (storage/rollups.py), so that queries read rollups, not readings.

Every ingest worker runs one; the worker that leads the job (ingest/leader.py) works, the
others wait to take over. Until a mark is refreshed, queries aggregate its hour from the
readings: a slow refresher costs query time, never correctness.
"""

from __future__ import annotations

import logging
import threading

import psycopg

from datahub.config import Settings
from datahub.errors import StorageUnavailable
from datahub.ingest.leader import Leadership
from datahub.storage import rollups
from datahub.storage.leadership import Job

log = logging.getLogger(__name__)

# Marks taken per transaction: a few thousand device-hours keep each transaction short.
BATCH = 5_000


class Refresher:
    """Refresh the rollups every `ingest.rollup_refresh_s` seconds until `stop_event` is set."""

    def __init__(self, settings: Settings, *, stop_event: threading.Event) -> None:
        self._settings = settings
        self._stop = stop_event
        self._thread = threading.Thread(target=self._run, name="rollup-refresher", daemon=True)
        self.leadership = Leadership(settings, Job.ROLLUPS)
        self.refreshed = 0  # marks cleared since the start

    def start(self) -> None:
        if self._settings.ingest.rollup_refresh_s > 0:
            self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        interval = self._settings.ingest.rollup_refresh_s
        failing = False
        while not self._stop.wait(interval):
            try:
                if (conn := self.leadership.lead()) is not None:
                    self.refresh_all(conn)
            except (StorageUnavailable, psycopg.Error) as exc:
                if not failing:  # once per outage, not once a second
                    log.warning(
                        "rollup refresh failed (%s); trying again every %g s", exc, interval
                    )
                failing = True
                self.leadership.drop()
            else:
                if failing:
                    log.info("rollup refresh works again")
                failing = False
        self.leadership.close()

    def refresh_all(self, conn: psycopg.Connection) -> int:
        """Refresh the marks there are, a batch per transaction; return how many were cleared.

        Stop at a batch that is not full (the marks added meanwhile wait for the next
        round, so a busy ingest cannot keep the refresher from sleeping), or when another
        session holds the refresh's lock (storage/rollups.py).
        """
        total = 0
        while not self._stop.is_set():
            with conn.transaction():
                cleared = rollups.refresh(conn, limit=BATCH)
            total += cleared or 0
            self.refreshed += cleared or 0
            if cleared is None or cleared < BATCH:
                break
        return total
