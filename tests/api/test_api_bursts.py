"""Bursts against a real API process: every answer is served (200) or refused with 429 and
`Retry-After`, never a 5xx while the database is up; the ledger equals what was served.

`datahub api` runs as a child process on a loopback address of its own, on a database of
this module, with a small pool so that a burst meets both the bounded queue (429 at once)
and the wait for a connection; keyed and anonymous clients start together. It keeps idle
connections open for `api.keep_alive_s`, so a request sent on one is never lost.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from access_world import consumer
from api_helpers import Seed, at
from realservices import Database, temporary_database

from datahub.bench.services import Service, database_config, free_port
from datahub.config import Settings
from datahub.storage import usage

pytestmark = pytest.mark.services

HOST = "127.0.0.2"
DEVICES = [f"70B3D57ED00001{i:02X}" for i in range(4)]
READINGS_PER_DEVICE = 24
KEEP_ALIVE_S = 2  # api.keep_alive_s here, shorter than its default to keep the test short


@dataclass(frozen=True)
class Api:
    base: str
    port: int
    keys: list[str]
    database: Database


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with temporary_database("timescaledb", "datahub_test_api_bursts") as database:
        with psycopg.connect(database.url) as conn:
            seed = Seed(conn)
            for dev_eui in DEVICES:
                seed.device(dev_eui, profile="decentlab/dl-sht35")
                seed.readings(
                    dev_eui,
                    "temperature",
                    {at(minutes=10 * i): 10.0 + i for i in range(READINGS_PER_DEVICE)},
                )
            keys = [
                consumer(conn, f"app-{i}", purpose="research", requests_per_s=50)[1]
                for i in range(4)
            ]
        port = free_port()
        config = {
            **database_config(database.settings()),
            "database": {"pool_size": 3, "pool_queue": 12, "pool_timeout_s": 10},
            "api": {"keep_alive_s": KEEP_ALIVE_S},
        }
        workdir: Path = tmp_path_factory.mktemp("bursts")
        process = Service("api", config, ["api", "--host", HOST, "--port", str(port)], workdir)
        base = f"http://{HOST}:{port}"
        try:
            process.wait_http(f"{base}/health/live")
            yield Api(base=base, port=port, keys=keys, database=database)
        finally:
            process.stop()


def burst(api: Api, clients: int) -> tuple[Counter[int], int, list[httpx.Response]]:
    """Start `clients` clients at once, half with keys, each asking for two raw series.

    Return the statuses, the readings served (counted in the bodies) and the refusals.
    """
    statuses: Counter[int] = Counter()
    refused: list[httpx.Response] = []
    served = 0
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client(index: int) -> None:
        nonlocal served
        headers = {}
        if index % 2 == 0:
            headers["Authorization"] = f"Bearer {api.keys[index // 2 % len(api.keys)]}"
        with httpx.Client(base_url=api.base, headers=headers, timeout=60.0) as http:
            start.wait()
            for request in range(2):
                dev_eui = DEVICES[(index + request) % len(DEVICES)]
                response = http.get(
                    f"/v1/devices/{dev_eui}/readings",
                    params={"from": "2024-05-01T00:00:00Z", "to": "2024-05-02T00:00:00Z"},
                )
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 200:
                        served += len(response.json()["items"])
                    else:
                        refused.append(response)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses, served, refused


@pytest.mark.parametrize("clients", [64, 256])
def test_a_burst_is_served_or_refused_with_429_and_the_ledger_holds(api: Api, clients: int) -> None:
    with psycopg.connect(api.database.url) as conn:
        before = usage.sum_usage(conn)

    statuses, served, refused = burst(api, clients)

    with psycopg.connect(api.database.url) as conn:
        recorded = usage.sum_usage(conn) - before
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] > 0 and sum(statuses.values()) == 2 * clients
    assert recorded == served
    for response in refused:
        assert response.headers["retry-after"].isdigit()
        assert response.json()["error"] == "TooManyRequests"
    # Both kinds of refusal meet the burst: a caller's own rate limit and the full queue.
    details = {r.json()["detail"].split(":")[0].split(" of ")[0] for r in refused}
    if clients == 256:
        assert "the API is busy" in details, details


def test_an_idle_connection_stays_open_for_keep_alive_s(api: Api) -> None:
    """A server that closes an idle connection first can close it just as a client's
    request arrives on it: the request is lost without an answer. The API keeps idle
    connections for `api.keep_alive_s`, by default longer than clients' pools keep theirs
    (httpx's 5 s here), and then closes them."""
    clients_expiry = httpx.Limits().keepalive_expiry
    assert clients_expiry is not None and Settings().api.keep_alive_s > clients_expiry
    with socket.create_connection((HOST, api.port), timeout=10) as sock:
        for idle_s in (0, KEEP_ALIVE_S / 2):
            time.sleep(idle_s)
            sock.sendall(f"GET /health/live HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            assert _response(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(KEEP_ALIVE_S + 1)
        sock.settimeout(0.5)
        assert sock.recv(1) == b""  # the server has closed it


def _response(sock: socket.socket) -> bytes:
    """Read one HTTP response with a Content-Length from `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head
