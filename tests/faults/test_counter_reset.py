"""A device whose frame counter resets mid-stream, through MQTT into the running ingest: every
uplink of both counter cycles is stored, and publishing them all again stores nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from counter_reset import counter_resets
from faultkit import (
    Broker,
    Ingest,
    assert_exactly,
    drain,
    generate,
    log_tail,
    targets,
)
from prometheus_text import total
from realservices import temporary_database
from waiting import wait_until

import simulators

pytestmark = pytest.mark.services


def test_a_device_that_resets_its_frame_counter_loses_nothing_live(
    broker: Broker, tmp_path: Path
) -> None:
    with temporary_database("timescaledb", "datahub_test_counter_reset") as database:
        ingest = Ingest(broker.url, database.url, tmp_path)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
        sims = counter_resets(generate(ingest.run, 3000), start=start)
        ingest.import_registry()
        ingest.start()
        try:
            simulators.publish(sims, targets(broker.port), qos=1)
            drain(database.url, ingest, len(sims), timeout=60)
            assert_exactly(database.url, sims)

            simulators.publish(sims, targets(broker.port), qos=1)  # every one again
            wait_until(
                "the copies to be taken",
                lambda: total(ingest.metrics(), "datahub_ingest_received_total") >= 2 * len(sims),
                60,
            )
            samples = ingest.metrics()
            assert total(samples, "datahub_ingest_duplicates_total") == len(sims)
            assert total(samples, "datahub_ingest_dead_letters_total") == 0
            assert_exactly(database.url, sims)
            assert ingest.terminate() == 0
        except BaseException:
            print(log_tail(ingest.log_path))
            raise
        finally:
            ingest.close()
