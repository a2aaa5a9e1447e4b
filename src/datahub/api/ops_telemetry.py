"""Prometheus gauges of the operator's view, read from the database when `/metrics` is scraped:
devices by health status and city, gateways by status and city, active alarms by rule.

Every (city, status) and (rule, state) pair is written, zeros too, so a series does not
vanish when its count drops to nothing. While the database is down they are left out of
the scrape (the request metrics are still there).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
from fastapi import FastAPI
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from datahub.api.metric_index import LiveMetricIndex, MetricIndex
from datahub.api.reads import Reads
from datahub.config import Settings
from datahub.domain import City
from datahub.errors import ServiceUnavailable, StorageBusy, StorageUnavailable
from datahub.ops import views
from datahub.ops.health import Status
from datahub.storage import alerts, device_health

log = logging.getLogger(__name__)


class OpsCollector(Collector):
    """Collects the operator gauges of one app at scrape time."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        reads: Reads | None = getattr(self._app.state, "reads", None)
        if reads is None:
            return
        try:
            # Where every read goes (api/reads.py): the replica while it is fresh enough.
            with reads.lend(reads.place()) as conn:
                families = self._families(conn)
        except (StorageUnavailable, StorageBusy, ServiceUnavailable, psycopg.Error) as exc:
            log.warning("operator metrics left out of the scrape: %s", exc)
            return
        yield from families

    def _families(self, conn: psycopg.Connection) -> list[Metric]:
        settings: Settings = self._app.state.settings
        catalog: MetricIndex | LiveMetricIndex = self._app.state.metric_index
        index = catalog.current if isinstance(catalog, LiveMetricIndex) else catalog
        now = datetime.now(UTC)
        found = views.device_views(
            device_health.list_device_health(conn),
            interval_of=index.reporting_interval,
            now=now,
            settings=settings.health,
        )
        devices = GaugeMetricFamily(
            "datahub_devices",
            "registered devices by health status and city",
            labels=["city", "status"],
        )
        by_device = Counter((v.row.city, v.status.value) for v in found)
        for city in City:
            for status in Status:
                devices.add_metric([city.value, status.value], by_device[city.value, status.value])
        gateways = GaugeMetricFamily(
            "datahub_gateways",
            "gateways heard in 7 days by status and city",
            labels=["city", "status"],
        )
        heard = views.gateway_views(
            device_health.list_gateway_links(conn),
            now=now,
            silent_after_s=settings.health.gateway_silent_after_s,
        )
        by_gateway = Counter((g.city, g.status.value) for g in heard)
        for city in City:
            for status in (Status.OK, Status.SILENT):
                gateways.add_metric(
                    [city.value, status.value], by_gateway[city.value, status.value]
                )
        alarms = GaugeMetricFamily(
            "datahub_alarms_active",
            "open and acknowledged alarms by rule and state",
            labels=["rule", "state"],
        )
        for (rule, state), n in sorted(alerts.count_active_alarms_by_rule(conn).items()):
            alarms.add_metric([rule, state], n)
        return [devices, gateways, alarms]
