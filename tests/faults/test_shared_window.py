"""QoS 1 liveness: two ingest workers share both sources by an MQTT 5 shared subscription,
with a queue far smaller than a batch (so the Receive Maximum window, 50 per source, is the
limit, and Mosquitto 2.0.11, which sends past that window once acknowledgements flow, fills
the queue and holds the network threads). Every uplink is stored exactly once and every
message acknowledged: the workers never stop taking messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from faultkit import (
    Broker,
    Ingest,
    Publisher,
    assert_exactly,
    drain,
    generate,
    log_tail,
)
from prometheus_text import total
from realservices import temporary_database
from waiting import wait_until

pytestmark = pytest.mark.services

N = 6_000
WORKERS = 2


def test_shared_subscription_with_a_small_window_takes_every_message(
    broker: Broker, tmp_path: Path
) -> None:
    with temporary_database("timescaledb", "datahub_test_shared_window") as database:
        (tmp_path / "probe").mkdir()
        probe = Ingest(broker.url, database.url, tmp_path / "probe")  # for its run's topics
        config = yaml.safe_load(probe.config.read_text())
        topics = {source["name"]: source["topic"] for source in config["sources"]}
        workers = []
        for i in range(WORKERS):
            (tmp_path / str(i)).mkdir()
            workers.append(
                Ingest(
                    broker.url,
                    database.url,
                    tmp_path / str(i),
                    run=probe.run,
                    # Receive Maximum = queue_limit / sources = 50 per source, a tenth of a batch.
                    ingest={"queue_limit": 100, "batch_size": 500, "batch_wait_ms": 1000},
                    sources={
                        name: {
                            "topic": f"$share/fault-{probe.run}/{topic}",
                            "mqtt_version": "5",
                            "client_id": f"fault-{name}-{probe.run}-{i}",
                        }
                        for name, topic in topics.items()
                    },
                )
            )
        sims = generate(probe.run, N)
        workers[0].import_registry()
        try:
            for worker in workers:
                worker.start()
            publisher = Publisher(sims, broker.port)
            publisher.start()
            publisher.finish(timeout=120)
            drain(database.url, workers[0], N, timeout=120)
            assert_exactly(database.url, sims)
            # Every message taken was acknowledged after its commit; none is left with the
            # broker for a redelivery.
            wait_until("every message to be acknowledged", lambda: acknowledged(workers) >= N, 30)
            samples = [w.metrics() for w in workers]
            received = [total(s, "datahub_ingest_received_total") for s in samples]
            acked = [total(s, "datahub_ingest_acknowledged_total") for s in samples]
            print(f"\nshared window: N={N}, received {received}, acknowledged {acked}")
            assert all(r > 0 for r in received), "the shared subscription fed one worker only"
            assert acked == received
            assert sum(received) == N
        except BaseException:
            for worker in workers:
                print(f"--- {worker.log_path}\n{log_tail(worker.log_path)}")
            raise
        finally:
            for worker in workers:
                worker.close()


def acknowledged(workers: list[Ingest]) -> float:
    return sum(total(w.metrics(), "datahub_ingest_acknowledged_total") for w in workers)
