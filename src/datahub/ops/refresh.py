"""The health refresher: recompute the health of the devices that are due (ops/health.py)
from their raw uplinks and battery readings, a few dozen devices per query.

Every ingest worker runs one (ops/worker.py); an advisory lock lets one of them work at a
time, so two never compute the same devices.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg

from datahub.config import HealthSettings
from datahub.ops import health
from datahub.storage import device_health, locks

log = logging.getLogger(__name__)

CHUNK = 50  # devices per query: a week of 15-minute uplinks is ~700 rows each
ROUND = 2000  # devices per round at most


def _utcnow() -> datetime:
    return datetime.now(UTC)


class HealthRefresher:
    """Recompute due devices' health rows; `refresh_due` is one round."""

    def __init__(
        self, settings: HealthSettings, *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._settings = settings
        self._clock = clock
        self.refreshed = 0

    def refresh_due(self, conn: psycopg.Connection) -> int:
        """Recompute every device due now, a chunk per transaction; return how many."""
        now = self._clock()
        with conn.transaction():
            if not locks.try_lock(conn, locks.HEALTH_REFRESH):
                return 0
            due = device_health.select_due_devices(
                conn,
                now=now,
                min_age=timedelta(seconds=self._settings.min_age_s),
                max_age=timedelta(seconds=self._settings.max_age_s),
                limit=ROUND,
            )
        total = 0
        for start in range(0, len(due), CHUNK):
            chunk = due[start : start + CHUNK]
            with conn.transaction():
                if not locks.try_lock(conn, locks.HEALTH_REFRESH):
                    break
                total += self.refresh(conn, chunk, now=now)
        self.refreshed += total
        return total

    def refresh(
        self,
        conn: psycopg.Connection,
        devices: list[tuple[int, str, datetime | None]],
        *,
        now: datetime,
    ) -> int:
        """Recompute and store the health of (device id, DevEUI, last seen) triples."""
        dev_euis = [e for _, e, _ in devices]
        since = now - health.WINDOW_7D
        uplinks = device_health.select_heard_uplinks(conn, dev_euis=dev_euis, since=since)
        gateways = device_health.select_gateway_links(
            conn, dev_euis=dev_euis, since=since, day_since=now - health.WINDOW_24H
        )
        batteries = device_health.select_battery_readings(
            conn,
            device_ids=[i for i, _, _ in devices],
            since=now - timedelta(days=health.BATTERY_DAYS),
        )
        rows = [
            (
                device_id,
                seen,
                health.compute(
                    uplinks[dev_eui], batteries[device_id], now=now, gateways=gateways[dev_eui]
                ),
            )
            for device_id, dev_eui, seen in devices
        ]
        device_health.upsert_health(conn, rows=rows)
        return len(rows)
