"""Crash safety: `kill -9` hits the ingest twice while 20,000 QoS 1 uplinks stream in; after
the last restart every uplink and every reading is stored exactly once."""

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
from realservices import temporary_database
from waiting import wait_until

pytestmark = pytest.mark.services

N = 20_000
KILLS_AT = (0.2, 0.5)  # fractions of N stored when a kill comes
RATE = 3_000  # uplinks per second: slow enough that the kills land mid-stream


def test_kill_9_twice_mid_stream_loses_nothing_and_stores_nothing_twice(
    broker: Broker, tmp_path: Path
) -> None:
    with temporary_database("timescaledb", "datahub_test_crash") as database:
        ingest = Ingest(broker.url, database.url, tmp_path)
        sims = generate(ingest.run, N)
        ingest.import_registry()
        ingest.start()
        publisher = Publisher(sims, broker.port, rate=RATE)
        try:
            publisher.start()
            publishing_at_kill = []
            for fraction in KILLS_AT:
                wait_until(
                    f"{fraction:.0%} of the uplinks to be stored",
                    lambda f=fraction: stored(database.url) >= N * f,  # type: ignore[misc]
                    120,
                )
                publishing_at_kill.append(publisher.is_alive())
                ingest.kill()
                time.sleep(0.5)  # the broker queues for the dead session meanwhile
                ingest.start()
            publisher.finish(timeout=180)
            drain(database.url, ingest, N, timeout=90)
            print(
                f"\ncrash: N={N}, kills={len(KILLS_AT)} (publisher running at each: "
                f"{publishing_at_kill}), stored={counts(database.url)}"
            )
            assert publishing_at_kill[0], "the first kill came after publishing had finished"
            assert_exactly(database.url, sims)
            assert ingest.terminate() == 0
        except BaseException:
            print(log_tail(ingest.log_path))
            raise
        finally:
            ingest.close()
