"""A half-open database connection: a TCP proxy between the ingest and the database stops
forwarding on the connections it holds, closing none (as after a failover, or behind a
stuck proxy), while new connections get through. The ingest notices within its response
timeout, replaces its connection, ends the old one's server session (which behind the
proxy lives on, holding the locks of the batch to retry), says so in the log, and stores
everything exactly once;
meanwhile /health/ready reports the stalled pipeline. SIGTERM with a frozen connection in
flight still stops it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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
from tcpproxy import TcpProxy
from waiting import wait_until

pytestmark = pytest.mark.services

RESPONSE_TIMEOUT_S = 6
RATE = 200  # uplinks per second


def through(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))


def test_a_frozen_connection_is_replaced_and_nothing_is_lost(
    broker: Broker, tmp_path: Path
) -> None:
    with temporary_database("timescaledb", "datahub_test_frozen") as database:
        target = urlsplit(database.url)
        assert target.hostname is not None and target.port is not None
        proxy = TcpProxy(target.hostname, target.port)
        ingest = Ingest(
            broker.url,
            through(database.url, proxy),
            tmp_path,
            ingest={"ready_stall_s": 1},
            database={
                "response_timeout_s": RESPONSE_TIMEOUT_S,
                "statement_timeout_ms": (RESPONSE_TIMEOUT_S - 1) * 1000,
            },
        )
        sims = generate(ingest.run, 4000)
        first, second = sims[:3000], sims[3000:]
        ingest.import_registry()
        ingest.start()
        publisher = Publisher(first, broker.port, rate=RATE)
        try:
            publisher.start()
            wait_until("uplinks to flow", lambda: stored(database.url) >= 2 * RATE, 60)

            assert proxy.freeze() >= 2  # the ingest's and the rollup refresher's at least
            at_freeze = stored(database.url)
            wait_until("readiness to fail", lambda: ingest.ready() == 503, RESPONSE_TIMEOUT_S)
            status, body = ingest.get("/health/ready")
            answer = json.loads(body)
            wait_until(
                "storing to resume on a new connection",
                lambda: stored(database.url) > at_freeze,
                RESPONSE_TIMEOUT_S * 3,
            )
            publisher.finish(timeout=60)
            drain(database.url, ingest, len(first), timeout=60)
            assert_exactly(database.url, first)
            log = ingest.log_path.read_text()
            assert f"no answer from the database within {RESPONSE_TIMEOUT_S} s" in log
            assert "ended the server session" in log  # it held the batch's dedup keys
            assert total(ingest.metrics(), "datahub_ingest_retries_total") >= 1
            assert ingest.get("/health/ready")[0] == 200
            print(f"\nfrozen: readiness {status} {answer}")
            assert status == 503
            assert answer["checks"]["database"] is True  # a fresh connection answers
            assert answer["checks"]["pipeline"] is False
            assert "no batch committed for" in answer["reasons"]["pipeline"]

            # SIGTERM while the batch in flight waits on a frozen connection.
            publisher = Publisher(second, broker.port, rate=RATE)
            publisher.start()
            wait_until("more uplinks", lambda: stored(database.url) >= len(first) + RATE, 60)
            proxy.freeze()
            time.sleep(1)
            signalled = time.monotonic()
            assert ingest.terminate(timeout=RESPONSE_TIMEOUT_S + 20) == 0
            print(f"stopped {time.monotonic() - signalled:.1f} s after SIGTERM")

            ingest.start()  # the rest comes from the persistent sessions
            publisher.finish(timeout=60)
            drain(database.url, ingest, len(sims), timeout=60)
            assert_exactly(database.url, sims)
            assert ingest.terminate() == 0
        except BaseException:
            print(log_tail(ingest.log_path, 60))
            raise
        finally:
            ingest.close()
            proxy.close()
