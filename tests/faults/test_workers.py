"""Ingest workers on three "hosts" share both sources by MQTT shared subscriptions, with one
configuration file (each worker named by DATAHUB_INGEST__WORKER). Uplinks stream in at
QoS 1, a tenth of them twice (as network servers redeliver); the worker that leads the
rollup refresher is killed with SIGKILL mid-stream, another takes the job over, and the
killed one comes back under its name. Every distinct uplink is stored exactly once, with
exactly the readings its payload encodes, and the workers' shares are reported.

DATAHUB_TEST_WORKER_UPLINKS sets how many distinct uplinks (default 20,000; the full
scenario is 100,000: docs/deployment.md reports a run).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import defaultdict
from pathlib import Path

import psycopg
import pytest
from faultkit import (
    SOURCES,
    Broker,
    Ingest,
    assert_exactly,
    counts,
    log_tail,
    scenario,
)
from prometheus_text import total
from realservices import temporary_database
from waiting import wait_until

import simulators
from datahub.bench import ceilings
from datahub.bench.workload import history_start
from datahub.config import parse_broker_url
from datahub.storage import leadership, rollups
from datahub.storage.leadership import Job

pytestmark = pytest.mark.services

N = int(os.environ.get("DATAHUB_TEST_WORKER_UPLINKS", "20000"))
DUPLICATES = 0.1  # of the distinct uplinks, published a second time
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
KILL_AT = 0.3  # of the distinct uplinks stored when the kill comes
# The singleton jobs whose leader is elected within seconds of start-up.
ELECTED = (Job.ROLLUPS, Job.OPS_MAINTENANCE, Job.ALERT_DELIVERY)
# Of the messages a worker took, each is exactly one of stored, undecoded, duplicate or
# dead letter (ingest/metrics.py).
OUTCOMES = {
    "received": "datahub_ingest_received_total",
    "stored": "datahub_ingest_stored_total",
    "undecoded": "datahub_ingest_undecoded_total",
    "duplicates": "datahub_ingest_duplicates_total",
    "dead_letters": "datahub_ingest_dead_letters_total",
}


def with_duplicates(bodies: list[bytes], rng: random.Random) -> list[bytes]:
    """The bodies in order, a tenth of them again a little later (up to 500 messages on)."""
    out = list(bodies)
    for index in sorted(rng.sample(range(len(bodies)), round(len(bodies) * DUPLICATES))):
        out.insert(min(len(out), index + 1 + rng.randrange(500)), bodies[index])
    return out


class Shares(threading.Thread):
    """Scrapes the workers' outcome counters four times a second. A worker's share is the
    sum over its lives: the last scrape before the kill, then the new process's."""

    def __init__(self, workers: list[Ingest]) -> None:
        super().__init__(name="shares", daemon=True)
        self.workers = workers
        self.last: dict[tuple[str, int], dict[str, int]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.25):
            self.scrape()

    def scrape(self) -> None:
        for worker in self.workers:
            if worker.alive() and (samples := scraped(worker)):
                outcome = {key: int(total(samples, name)) for key, name in OUTCOMES.items()}
                self.last[(str(worker.worker), worker.starts)] = outcome

    def per_worker(self) -> dict[str, dict[str, int]]:
        shares: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
        for (worker, _), outcome in sorted(self.last.items()):
            for key, value in outcome.items():
                shares[worker][key] += value
        return dict(shares)

    def new_uplinks(self) -> int:
        return sum(s["stored"] + s["undecoded"] for s in self.per_worker().values())


def scraped(worker: Ingest) -> dict[str, float]:
    """The worker's metrics; nothing if it does not answer (it may just have been killed)."""
    status, body = worker.get("/metrics")
    if status != 200:
        return {}
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def leaders(workers: list[Ingest], job: str) -> list[Ingest]:
    gauge = f'datahub_ingest_leader{{job="{job}"}}'
    return [w for w in workers if w.alive() and scraped(w).get(gauge) == 1]


def settled(workers: list[Ingest]) -> bool:
    """Nothing queued or in flight at any worker."""
    return all(scraped(w).get("datahub_ingest_backlog_messages") == 0 for w in workers)


def dirty(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return rollups.count_dirty(conn)


def test_three_workers_share_the_sources_and_survive_a_kill(broker: Broker, tmp_path: Path) -> None:
    run = f"w{os.getpid()}"
    workers = []
    with temporary_database("timescaledb", "datahub_test_workers") as database:
        for i, host in enumerate(HOSTS, start=1):
            (tmp_path / f"w{i}").mkdir()
            workers.append(
                Ingest(
                    broker.url,
                    database.url,
                    tmp_path / f"w{i}",
                    host=host,
                    worker=f"w{i}",
                    share_group=f"datahub-{run}",
                    run=run,
                )
            )
        assert len({w.config.read_text() for w in workers}) == 1

        sims = list(simulators.generate(scenario(run), seed=11, start=history_start(N), count=N))
        rng = random.Random(5)
        sets: dict[str, tuple[str, list[bytes]]] = {}
        for source, fmt in SOURCES.items():
            messages = [s.message(fmt) for s in sims if s.source == source]
            # The ingest takes an uplink's identity from its body: one topic per source.
            sets[source] = (messages[0][0], with_duplicates([b for _, b in messages], rng))
        sent = sum(len(bodies) for _, bodies in sets.values())
        workers[0].import_registry()
        shares = Shares(workers)
        try:
            for worker in workers:
                worker.start()
            shares.start()
            publishers = ceilings.publish_lines(
                parse_broker_url(broker.url), sets, qos=1, run=f"publish-{run}"
            )
            wait_until(
                "one leader of the rollups", lambda: len(leaders(workers, "rollups")) == 1, 30
            )
            wait_until(
                f"{KILL_AT:.0%} of the uplinks to be stored",
                lambda: shares.new_uplinks() >= N * KILL_AT,
                120,
                every=0.05,
            )
            [killed] = leaders(workers, "rollups")
            publishing = any(p.poll() is None for p in publishers)
            killed.kill()
            killed_at = time.monotonic()
            wait_until(
                "another worker to lead the rollups", lambda: bool(leaders(workers, "rollups")), 15
            )
            takeover_s = time.monotonic() - killed_at
            [successor] = leaders(workers, "rollups")
            time.sleep(0.5)  # the broker keeps the dead worker's share for its session
            killed.start()
            ceilings.wait_publishers(publishers, 120)
            wait_until(f"{N} uplinks to be stored", lambda: counts(database.url)[0] >= N, 180, 0.5)
            wait_until("every worker to have taken all", lambda: settled(workers), 60)
            time.sleep(1.0)  # a second copy of any uplink would be stored by now
            shares.stop.set()
            shares.join()
            shares.scrape()

            per_worker = shares.per_worker()
            received = sum(s["received"] for s in per_worker.values())
            print(
                f"\nworkers: {N} distinct uplinks in {sent} messages ({sent - N} duplicates); "
                f"{killed.worker} killed while leading the rollups at {KILL_AT:.0%} stored "
                f"(publishers still running: {publishing}); {successor.worker} led them "
                f"{takeover_s:.1f} s later"
            )
            for name, share in per_worker.items():
                print(f"  {name}: {share['received'] / received:.1%} of the messages, {share}")
            assert_exactly(database.url, sims)
            assert successor is not killed
            assert all(s["received"] > 0 for s in per_worker.values()), per_worker
            assert sum(s["dead_letters"] for s in per_worker.values()) == 0
            # One leader of each singleton job among the workers (the dedup retention's
            # first round comes a minute after start-up); the rollups' keeps them current.
            for job in ELECTED:
                wait_until(
                    f"one leader of {job.label}",
                    lambda job=job: len(leaders(workers, job.label)) == 1,
                    15,
                )
            with psycopg.connect(database.url) as conn:
                elected = leadership.list_leaders(conn)
            assert {job: name.rsplit("/", 1)[1] for job, name in elected.items()} == {
                job: job.label for job in ELECTED
            }
            wait_until("the rollups to be refreshed", lambda: dirty(database.url) == 0, 30)
            for worker in workers:
                assert worker.terminate() == 0
        except BaseException:
            for worker in workers:
                print(f"--- {worker.log_path}\n{log_tail(worker.log_path)}")
            raise
        finally:
            shares.stop.set()
            for worker in workers:
                worker.close()
