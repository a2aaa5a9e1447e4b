"""The load generator of `datahub bench api`, run as a process of its own.

It reads one `Spec` as JSON on stdin and prints one result as JSON on stdout, so that its
CPU is its own and can be reported beside the API's. Two modes, at the same concurrency:

- `http`: `clients` concurrent keep-alive connections (aiohttp, one event loop) ask the
  API the spec's requests in turn, each client its own share of them;
- `db`: `clients` threads, each lending a connection of one pool (psycopg), send the same
  statements the API's route sends to read its answer (`bench.api.BASELINES`), in
  autocommit: what the database alone answers, without HTTP, keys, limits or metering.

Requests answered during the first `warmup_s` are not timed, but their observations are
counted, as the ledger counts them.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from psycopg_pool import ConnectionPool


@dataclass(frozen=True, slots=True)
class Spec:
    mode: str  # http | db
    clients: int
    seconds: float
    warmup_s: float
    # http: [path with query, caller]; db: [baseline name, arguments]
    requests: Sequence[tuple[str, Any]]
    base_url: str = ""
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # caller -> headers
    count: str = "items"  # how an answer's observations are counted: items | points
    conninfo: str = ""


@dataclass(slots=True)
class Tally:
    """What the clients saw: statuses, timed latencies, observations received."""

    statuses: Counter[int] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    timed: int = 0  # answered 200 after the warm-up
    observations: int = 0

    def add(self, status: int, elapsed: float, observations: int, *, timing: bool) -> None:
        self.statuses[status] += 1
        self.observations += observations
        if timing:
            self.seconds.append(elapsed)
            self.timed += status == 200


def main() -> None:
    """Run the spec on stdin; print the result."""
    raw = json.load(sys.stdin)
    spec = Spec(**{**raw, "requests": [tuple(r) for r in raw["requests"]]})
    runner = _http if spec.mode == "http" else _db
    cpu_before = _cpu_seconds()
    tally, measured_s = runner(spec)
    print(
        json.dumps(
            {
                "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
                "seconds": tally.seconds,
                "ok_per_s": tally.timed / measured_s if measured_s > 0 else 0.0,
                "observations": tally.observations,
                "measured_s": measured_s,
                "cpu_s": _cpu_seconds() - cpu_before,
            }
        )
    )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _observations(body: bytes, count: str) -> int:
    document = orjson.loads(body)
    if count == "points":
        return sum(len(series["points"]) for series in document["series"])
    return len(document["items"])


def _http(spec: Spec) -> tuple[Tally, float]:
    return asyncio.run(_http_clients(spec))


async def _http_clients(spec: Spec) -> tuple[Tally, float]:
    tally = Tally()
    started = time.monotonic()
    timed_from = started + spec.warmup_s
    deadline = timed_from + spec.seconds
    connector = aiohttp.TCPConnector(limit=spec.clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(
        spec.base_url, connector=connector, timeout=timeout
    ) as session:

        async def client(index: int) -> None:
            k = index
            while (now := time.monotonic()) < deadline:
                path, caller = spec.requests[k % len(spec.requests)]
                k += spec.clients
                async with session.get(path, headers=spec.headers.get(caller)) as response:
                    body = await response.read()
                elapsed = time.monotonic() - now
                served = _observations(body, spec.count) if response.status == 200 else 0
                tally.add(response.status, elapsed, served, timing=now >= timed_from)

        await asyncio.gather(*(client(i) for i in range(spec.clients)))
    return tally, time.monotonic() - timed_from


def _db(spec: Spec) -> tuple[Tally, float]:
    from datahub.bench.api import BASELINES

    tally = Tally()
    lock = threading.Lock()
    pool = ConnectionPool(
        spec.conninfo,
        min_size=spec.clients,
        max_size=spec.clients,
        kwargs={"autocommit": True},
        open=True,
    )
    pool.wait()
    started = time.monotonic()
    timed_from = started + spec.warmup_s
    deadline = timed_from + spec.seconds

    def client(index: int) -> None:
        k = index
        while (now := time.monotonic()) < deadline:
            name, arguments = spec.requests[k % len(spec.requests)]
            k += spec.clients
            with pool.connection() as conn:
                served = BASELINES[name](conn, **arguments)
            elapsed = time.monotonic() - now
            with lock:
                tally.add(200, elapsed, served, timing=now >= timed_from)

    try:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(spec.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        pool.close()
    return tally, time.monotonic() - timed_from


if __name__ == "__main__":
    main()
