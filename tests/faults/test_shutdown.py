"""Graceful shutdown and the ingest's own endpoints: SIGTERM mid-stream commits and
acknowledges the batch in flight and exits 0; whatever was acknowledged is stored, and what
was not is delivered again to the next process. Metrics and health checks while it runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faultkit import (
    Broker,
    Ingest,
    Publisher,
    assert_exactly,
    drain,
    generate,
    log_tail,
    stored,
)
from prometheus_text import total
from realservices import temporary_database
from waiting import wait_until

pytestmark = pytest.mark.services

N = 6_000
RATE = 1_500


def stop_stats(log: Path) -> dict[str, int]:
    """The counters the ingest logs when it stops."""
    lines = [line for line in log.read_text().splitlines() if "ingest stopped: " in line]
    assert lines, "the ingest did not log its counters on stopping"
    stats: dict[str, int] = json.loads(lines[-1].split("ingest stopped: ", 1)[1])
    return stats


def test_sigterm_mid_stream_acknowledges_only_what_is_stored_and_exits_0(
    broker: Broker, tmp_path: Path
) -> None:
    with temporary_database("timescaledb", "datahub_test_shutdown") as database:
        ingest = Ingest(broker.url, database.url, tmp_path)
        sims = generate(ingest.run, N)
        ingest.import_registry()
        ingest.start()
        publisher = Publisher(sims, broker.port, rate=RATE)
        try:
            publisher.start()
            wait_until("a third of the uplinks", lambda: stored(database.url) >= N // 3, 60)

            assert ingest.get("/health/live")[0] == 200
            assert ingest.get("/health/ready")[0] == 200
            samples = ingest.metrics()
            received = total(samples, "datahub_ingest_received_total")
            assert samples['datahub_ingest_received_total{source="ttn-dortmund"}'] > 0
            assert samples['datahub_ingest_stored_total{source="chirpstack-schwerte"}'] > 0
            assert 0 < total(samples, "datahub_ingest_stored_total") <= received
            assert samples["datahub_ingest_batch_seconds_count"] > 0
            assert samples["datahub_ingest_lag_seconds"] >= 0
            assert samples['datahub_ingest_source_up{source="ttn-dortmund"}'] == 1
            assert samples["datahub_ingest_database_up"] == 1
            assert "datahub_ingest_backlog_messages" in samples

            assert ingest.terminate() == 0
            at_exit = stored(database.url)
            stats = stop_stats(ingest.log_path)
            # Acknowledged only after commit: every acknowledged message is in the database.
            assert stats["acknowledged"] == stats["stored"] + stats.get("duplicates", 0)
            assert stats["acknowledged"] <= at_exit < N

            ingest.start()  # the rest comes from the persistent sessions
            publisher.finish(timeout=120)
            drain(database.url, ingest, N, timeout=90)
            print(f"\nshutdown: N={N}, stored at SIGTERM={at_exit}, stats={stats}")
            assert_exactly(database.url, sims)
            assert ingest.terminate() == 0
        except BaseException:
            print(log_tail(ingest.log_path))
            raise
        finally:
            ingest.close()
