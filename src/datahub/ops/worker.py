"""The operator's background work in every ingest process: two threads beside the ingest's own.

`ops-maintenance` recomputes device health (ops/refresh.py) every `health.refresh_s` and
runs the scheduler of silence rules (ops/scheduler.py) every `alerts.scheduler_s`;
`alert-delivery` sends pending notifications (ops/delivery.py) every
`alerts.delivery_poll_s`. Each has its own connection, so a slow webhook or mail server
holds only the delivery thread: the ingest never waits for either. Every ingest worker
runs both threads; each works only while its worker leads its job (ingest/leader.py), so
one worker at a time refreshes, schedules and delivers (the advisory locks and `SKIP
LOCKED` inside would keep two apart too, at the cost of work done twice).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

from datahub.config import Settings
from datahub.errors import StorageUnavailable
from datahub.ingest.leader import Leadership
from datahub.ops import scheduler
from datahub.ops.delivery import Deliverer
from datahub.ops.refresh import HealthRefresher
from datahub.ops.scheduler import IntervalOf
from datahub.storage.leadership import Job

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class OpsWorker:
    """Health refresher, alert scheduler and delivery worker, until `stop_event` is set."""

    def __init__(
        self,
        settings: Settings,
        *,
        stop_event: threading.Event,
        interval_of: IntervalOf,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._settings = settings
        self._stop = stop_event
        self._interval_of = interval_of
        self._clock = clock
        self.refresher = HealthRefresher(settings.health, clock=clock)
        self.deliverer = Deliverer(settings.alerts, clock=clock)
        self.maintenance = Leadership(settings, Job.OPS_MAINTENANCE)
        self.delivery = Leadership(settings, Job.ALERT_DELIVERY)
        self._threads = [
            threading.Thread(target=self._maintain, name="ops-maintenance", daemon=True),
            threading.Thread(target=self._deliver, name="alert-delivery", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)

    def _maintain(self) -> None:
        health_every = self._settings.health.refresh_s
        schedule_every = self._settings.alerts.scheduler_s
        due = {"health": 0.0, "schedule": 0.0}
        self._loop(
            "maintenance",
            self.maintenance,
            tick=min(x for x in (health_every, schedule_every, 60.0) if x > 0),
            work=lambda conn: self._maintain_once(conn, due, health_every, schedule_every),
        )

    def _maintain_once(
        self,
        conn: psycopg.Connection,
        due: dict[str, float],
        health_every: float,
        schedule_every: float,
    ) -> None:
        now = time.monotonic()
        if health_every > 0 and now >= due["health"]:
            self.refresher.refresh_due(conn)
            due["health"] = now + health_every
        if schedule_every > 0 and now >= due["schedule"]:
            scheduler.run_once(conn, now=self._clock(), interval_of=self._interval_of)
            due["schedule"] = now + schedule_every

    def _deliver(self) -> None:
        self._loop(
            "delivery",
            self.delivery,
            tick=self._settings.alerts.delivery_poll_s,
            work=lambda conn: self.deliverer.deliver_due(conn, stop=self._stop.is_set),
        )

    def _loop(
        self,
        what: str,
        leadership: Leadership,
        *,
        tick: float,
        work: Callable[[psycopg.Connection], object],
    ) -> None:
        while not self._stop.wait(tick):
            try:
                if (conn := leadership.lead()) is not None:
                    work(conn)
            except (StorageUnavailable, psycopg.Error) as exc:
                log.warning("ops %s failed (%s); trying again", what, exc)
                leadership.drop()
            except Exception:  # a bug must not end the thread for the life of the process
                log.exception("ops %s failed", what)
        leadership.close()
