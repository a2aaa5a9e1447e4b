"""Broker restart: the private Mosquitto (with persistence) stops and starts again while
uplinks stream in at QoS 1. The ingest reconnects and resubscribes by itself, the publisher
retries across the restart, and every uplink is stored exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from faultkit import (
    Broker,
    Ingest,
    Publisher,
    assert_exactly,
    counts,
    drain,
    generate,
    log_tail,
    stored,
)
from prometheus_text import total
from realservices import temporary_database
from waiting import wait_until

pytestmark = pytest.mark.services

N = 8_000
RATE = 1_000
DOWN_S = 3.0


def test_broker_restart_mid_stream_loses_nothing(broker: Broker, tmp_path: Path) -> None:
    with temporary_database("timescaledb", "datahub_test_broker_restart") as database:
        ingest = Ingest(broker.url, database.url, tmp_path)
        sims = generate(ingest.run, N)
        ingest.import_registry()
        ingest.start()
        publisher = Publisher(sims, broker.port, rate=RATE)
        try:
            publisher.start()
            wait_until("a third of the uplinks", lambda: stored(database.url) >= N // 3, 60)
            broker.stop()
            at_restart = stored(database.url)
            time.sleep(DOWN_S)
            samples = ingest.metrics()
            assert total(samples, "datahub_ingest_source_up") == 0
            broker.start()
            # Reconnects by itself (paho's back-off: 1-30 s) and subscribes again.
            wait_until("the ingest to reconnect", lambda: ingest.ready() == 200, 60)
            publisher.finish(timeout=120)
            assert publisher.published == N
            drain(database.url, ingest, N, timeout=90)
            print(
                f"\nbroker restart: N={N}, stored at restart={at_restart}, down {DOWN_S} s, "
                f"stored={counts(database.url)}"
            )
            assert at_restart < N, "the restart came after everything was stored"
            assert_exactly(database.url, sims)
            assert ingest.starts == 1, "the ingest must not be restarted"
            assert ingest.terminate() == 0
        except BaseException:
            print(log_tail(ingest.log_path))
            raise
        finally:
            ingest.close()
