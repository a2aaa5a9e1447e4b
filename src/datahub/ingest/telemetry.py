"""The ingest's telemetry (Prometheus) and health checks, on a small HTTP server of its own.

    GET /metrics        Prometheus text format
    GET /health/live    200 while the process runs
    GET /health/ready   200 when every source is subscribed, the database answers and the
                        pipeline drains what it received; else 503, with the reasons

The pipeline counts its stages in `Stats`; this module only translates those counters into
metric families when scraped, so the hot path never touches Prometheus. Labels are the
source and the reason only: never a device, topic or message.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# Batches take from a few milliseconds (a handful of messages) to seconds (a full batch on a
# slow disk).
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True, slots=True)
class Family:
    """How the stage counters whose key is `key` (or starts with it, if it ends in a dot)
    become one counter family."""

    key: str
    name: str
    documentation: str
    labels: tuple[str, ...] = ("source",)
    reason: str | None = None  # the reason label: this, or the key's rest after the prefix

    def matches(self, key: str) -> bool:
        return key == self.key or (self.key.endswith(".") and key.startswith(self.key))

    def label_values(self, key: str, source: str | None) -> list[str]:
        values = {"source": source or "", "reason": self.reason or key[len(self.key) :]}
        return [values[label] for label in self.labels]


# Every message taken is received, then exactly one of stored, duplicates, dead-lettered
# or undecoded: received = stored + duplicates + dead_letters + undecoded, per source.
_UNDECODED = (
    "messages stored as new uplinks that could not be decoded, by reason: unknown_device, "
    "no_decoder, decode_failed"
)

# Stage counter keys of `Stats` (see pipeline.py) and the counter families they feed.
FAMILIES = (
    Family(
        "received",
        "datahub_ingest_received",
        "messages taken from the brokers or a back-fill, counted once their outcome is "
        "committed; = stored + duplicates + dead_letters + undecoded",
    ),
    Family(
        "stored",
        "datahub_ingest_stored",
        "messages stored as new uplinks and decoded (some may have no readings)",
    ),
    Family(
        "duplicates",
        "datahub_ingest_duplicates",
        "messages of uplinks stored before with the same content: skipped",
    ),
    Family("acknowledged", "datahub_ingest_acknowledged", "QoS 1 messages acknowledged"),
    Family(
        "dead_letter.",
        "datahub_ingest_dead_letters",
        "messages not stored as uplinks, kept in dead_letter, by reason",
        labels=("source", "reason"),
    ),
    Family(
        "unknown_device",
        "datahub_ingest_undecoded",
        _UNDECODED,
        labels=("source", "reason"),
        reason="unknown_device",
    ),
    Family(
        "no_decoder",
        "datahub_ingest_undecoded",
        _UNDECODED,
        labels=("source", "reason"),
        reason="no_decoder",
    ),
    Family(
        "decode_failed",
        "datahub_ingest_undecoded",
        _UNDECODED,
        labels=("source", "reason"),
        reason="decode_failed",
    ),
    Family(
        "backfilled",
        "datahub_ingest_backfilled",
        "new uplinks stored by the back-fill after a QoS 0 source reconnected",
    ),
    Family(
        "backfill_failed",
        "datahub_ingest_backfill_failures",
        "reconnect back-fills given up after their retries",
    ),
    Family(
        "value_skipped",
        "datahub_ingest_values_skipped",
        "decoded values of stored uplinks that did not become readings",
    ),
    Family("readings", "datahub_ingest_readings", "readings written", labels=()),
    Family("retries", "datahub_ingest_retries", "batch attempts failed and retried", labels=()),
)


@dataclass(frozen=True, slots=True)
class Readiness:
    """The checks of /health/ready, and why those that fail do."""

    checks: dict[str, bool]
    reasons: dict[str, str]

    @property
    def ok(self) -> bool:
        return all(self.checks.values())


class IngestState(Protocol):
    """What the collector reads from the running ingest at scrape time."""

    def counters(self) -> Mapping[tuple[str, str | None], int]:
        """Stage counters by (key, source); source None for counters of no one source."""
        ...

    def backlog(self) -> int:
        """Messages received and not yet acknowledged: queued plus in the batch in flight."""
        ...

    def last_stored_at(self) -> datetime | None:
        """The received_at of the newest uplink stored so far."""
        ...

    def sources_online(self) -> Mapping[str, bool]: ...

    def database_up(self) -> bool:
        """Whether the last database operation succeeded."""
        ...

    def leading(self) -> Mapping[str, bool]:
        """Whether this worker leads each job one worker at a time runs."""
        ...


class _StageCollector(Collector):
    def __init__(self, state: IngestState, clock: Callable[[], datetime]) -> None:
        self._state = state
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily] = {}
        for family in FAMILIES:
            if family.name not in families:
                families[family.name] = CounterMetricFamily(
                    family.name, family.documentation, labels=family.labels
                )
        for (key, source), value in sorted(self._state.counters().items(), key=str):
            match = next((f for f in FAMILIES if f.matches(key)), None)
            if match is not None:
                families[match.name].add_metric(match.label_values(key, source), value)
        yield from families.values()

        yield GaugeMetricFamily(
            "datahub_ingest_backlog_messages",
            "messages received and not yet acknowledged (queued plus in flight)",
            value=self._state.backlog(),
        )
        last = self._state.last_stored_at()
        lag = GaugeMetricFamily(
            "datahub_ingest_lag_seconds",
            "now minus received_at of the newest uplink stored (NaN before the first)",
            value=(self._clock() - last).total_seconds() if last else float("nan"),
        )
        yield lag
        online = GaugeMetricFamily(
            "datahub_ingest_source_up",
            "1 while a source is connected and subscribed",
            labels=["source"],
        )
        for name, up in sorted(self._state.sources_online().items()):
            online.add_metric([name], 1.0 if up else 0.0)
        yield online
        yield GaugeMetricFamily(
            "datahub_ingest_database_up",
            "1 while the last database operation succeeded",
            value=1.0 if self._state.database_up() else 0.0,
        )
        leader = GaugeMetricFamily(
            "datahub_ingest_leader",
            "1 while this worker leads the job (one worker at a time runs it)",
            labels=["job"],
        )
        for job, leading in sorted(self._state.leading().items()):
            leader.add_metric([job], 1.0 if leading else 0.0)
        yield leader


class IngestTelemetry:
    """The ingest's telemetry: stage counters read at scrape time, plus batch latency."""

    def __init__(
        self, state: IngestState, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.collectors = CollectorRegistry()
        self.collectors.register(_StageCollector(state, clock))
        self.batch_seconds = Histogram(
            "datahub_ingest_batch_seconds",
            "time to store and acknowledge one batch, retries included",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=self.collectors,
        )

    def render(self) -> bytes:
        return generate_latest(self.collectors)


class HealthServer:
    """Serves /metrics, /health/live and /health/ready on a thread of its own."""

    def __init__(
        self,
        telemetry: IngestTelemetry,
        *,
        host: str,
        port: int,
        ready: Callable[[], Readiness],
    ) -> None:
        handler = _handler(telemetry, ready)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ingest-health", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("telemetry and health checks on port %d", self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(
    telemetry: IngestTelemetry, ready: Callable[[], Readiness]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(HTTPStatus.OK, telemetry.render(), CONTENT_TYPE_LATEST)
            elif path == "/health/live":
                self._json(HTTPStatus.OK, {"status": "ok"})
            elif path == "/health/ready":
                started = time.monotonic()
                readiness = ready()
                body: dict[str, object] = {
                    "status": "ok" if readiness.ok else "unavailable",
                    "checks": readiness.checks,
                    "reasons": readiness.reasons,
                }
                body["seconds"] = round(time.monotonic() - started, 3)
                status = HTTPStatus.OK if readiness.ok else HTTPStatus.SERVICE_UNAVAILABLE
                self._json(status, body)
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": "NotFound", "detail": path})

        def _json(self, status: HTTPStatus, body: object) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds would drown the log

    return Handler
