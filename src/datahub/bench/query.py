"""`datahub bench query`: the real API (uvicorn, as `datahub api` runs it) over HTTP, on the
benchmark data set (bench/dataset.py), p50 and p95 of repeated requests per query.

Each query is asked `repeat` times (after a few warm-ups), of devices drawn at random, by
one client, every query in turn; `raw_rps_16_clients` is the raw-series request rate of 16
concurrent clients.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from datahub import audit
from datahub.bench import dataset
from datahub.bench.services import BenchError, Service, database_config, free_port, percentile
from datahub.config import Settings
from datahub.fairshare import admin
from datahub.storage import db

WARMUP = 3
METRIC = "temperature"
# The bench consumer's own rate limit: high enough that it never caps the request rate
# (anonymous callers get 20/s per address, a consumer 50/s unless it sets its own).
REQUESTS_PER_S = 1_000_000


@dataclass(frozen=True, slots=True)
class QueryOptions:
    devices: int = 2000
    days: int = 90
    repeat: int = 50
    clients: int = 16
    rps_seconds: float = 10.0
    prefix: str = "datahub_bench"  # of the data set's database name


def run(settings: Settings, options: QueryOptions, workdir: Path) -> dict[str, Any]:
    """Load or reuse the data set, start the API, time the queries; return the JSON document."""
    load_before = os.getloadavg()[0]
    data = dataset.ensure(
        settings, devices_count=options.devices, days=options.days, prefix=options.prefix
    )
    headers = {"Authorization": f"Bearer {_admin_key(data.settings)}"}
    port = free_port()
    config = {**database_config(data.settings), "api": {"port": port}}
    api = Service("api", config, ["api", "--port", str(port)], workdir)
    base = f"http://127.0.0.1:{port}"
    try:
        api.wait_http(f"{base}/health")
        with httpx.Client(base_url=base, headers=headers, timeout=60.0) as client:
            datastreams = _datastreams(client)
            timings = _time_queries(client, data, options.repeat, datastreams)
        rps, statuses = _raw_rate(base, headers, data, options.clients, options.rps_seconds)
    finally:
        api.stop()
    figures: dict[str, Any] = {
        # Other work on the machine skews every figure: the 1-minute load, before and after.
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "devices": options.devices,
        "days": options.days,
        "readings": data.spec.readings,
        "dataset_reused": data.reused,
        "load": None
        if data.load is None
        else {
            "copy_s": round(data.load.copy_s, 1),
            "copy_rows_per_s": round(data.spec.readings / data.load.copy_s)
            if data.load.copy_s > 0
            else None,
            "rollups_s": round(data.load.rollups_s, 1),
            "analyze_s": round(data.load.analyze_s, 1),
            "total_s": round(data.load.total_s, 1),
        },
        "repeat": options.repeat,
    }
    for name, (seconds, items) in timings.items():
        figures[f"{name}_p50_ms"] = round(percentile(seconds, 50) * 1000, 2)
        figures[f"{name}_p95_ms"] = round(percentile(seconds, 95) * 1000, 2)
        figures[f"{name}_items"] = items
    figures[
        "raw_rps_16_clients" if options.clients == 16 else f"raw_rps_{options.clients}_clients"
    ] = round(rps, 1)
    figures["raw_rps_statuses"] = dict(statuses)
    # The same questions through SensorThings, as ratios to the REST API's in this run.
    for sta_name, rest_name in SENSORTHINGS_PAIRS.items():
        figures[f"{sta_name}_p95_ratio"] = round(
            figures[f"{sta_name}_p95_ms"] / figures[f"{rest_name}_p95_ms"], 2
        )
    figures["targets"] = {
        "aggregate_90d_hourly_p95_under_30ms": figures["aggregate_90d_hourly_p95_ms"] < 30,
        "latest_city_p95_under_50ms": figures["latest_city_p95_ms"] < 50,
        "city_daily_90d_p95_under_100ms": figures["city_daily_90d_p95_ms"] < 100,
        **{
            f"{name}_p95_within_1_5x_rest": figures[f"{name}_p95_ratio"] <= 1.5
            for name in SENSORTHINGS_PAIRS
        },
        "sta_count_all_p95_under_50ms": figures["sta_count_all_p95_ms"] < 50,
    }
    return figures


# SensorThings query -> the REST query asking the same.
SENSORTHINGS_PAIRS = {"sta_raw_1d": "raw_1d", "sta_aggregate_90d_hourly": "aggregate_90d_hourly"}
STA = "/sta/v1.1"


def _datastreams(client: httpx.Client) -> dict[str, int]:
    """DevEUI -> the id of its Datastream of METRIC, read through SensorThings itself."""
    response = client.get(
        f"{STA}/Datastreams",
        params={
            "$filter": f"properties/metric eq '{METRIC}'",
            "$select": "id",
            "$expand": "Thing($select=properties)",
            "$top": "10000",
        },
    )
    if response.status_code != 200:
        raise BenchError(f"SensorThings Datastreams: {response.status_code} {response.text[:300]}")
    return {d["Thing"]["properties"]["dev_eui"]: d["@iot.id"] for d in response.json()["value"]}


def _admin_key(settings: Settings) -> str:
    """Make a consumer of this run with an admin key; return the key.

    The admin scope sees every dataset, and the consumer's rate limit is set so high that
    the request rate measures the API, not the limit.
    """
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    with db.connect(settings) as conn, conn.transaction():
        admin.add_consumer(
            conn,
            actor=audit.cli_actor("bench"),
            slug=slug,
            name="datahub bench query",
            purpose="research",
            requests_per_s=REQUESTS_PER_S,
        )
        _, secret = admin.create_key(
            conn,
            actor=audit.cli_actor("bench"),
            consumer=slug,
            scopes=["read", "admin"],
            label="bench",
        )
    return secret


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _requests(
    data: dataset.Dataset, rng: random.Random, datastreams: dict[str, int] | None = None
) -> dict[str, Callable[[], tuple[str, dict[str, str]]]]:
    """Query name -> a maker of one request (path, params), of a random device or city."""
    last_day = {"from": _iso(data.end - timedelta(days=1)), "to": _iso(data.end)}
    whole = {"from": _iso(data.start), "to": _iso(data.end)}
    ids = datastreams or {}

    def between(start: datetime, end: datetime) -> str:
        return f"phenomenonTime ge {_iso(start)} and phenomenonTime lt {_iso(end)}"

    def observations() -> str:
        return f"{STA}/Datastreams({ids[device()]})/Observations"

    def device() -> str:
        return rng.choice(data.dev_euis)

    def city() -> str:
        return rng.choice(["dortmund", "schwerte"])

    return {
        "aggregate_90d_hourly": lambda: (
            "/v1/readings/aggregate",
            {"device": device(), "metric": METRIC, "bucket": "1h", "fn": "avg", **whole},
        ),
        "raw_1d": lambda: (f"/v1/devices/{device()}/readings", {"metric": METRIC, **last_day}),
        "latest_city": lambda: ("/v1/latest", {"city": city()}),
        "city_daily_90d": lambda: (
            "/v1/readings/aggregate",
            {"city": city(), "metric": METRIC, "bucket": "1d", "fn": "avg", **whole},
        ),
        # One response each, as the REST queries: a day of raw readings (at most the REST
        # page size) and 90 days of hourly means.
        "sta_raw_1d": lambda: (
            observations(),
            {"$filter": between(data.end - timedelta(days=1), data.end), "$top": "1000"},
        ),
        "sta_aggregate_90d_hourly": lambda: (
            observations(),
            {"aggregate": "1h", "$filter": between(data.start, data.end), "$top": "10000"},
        ),
        "sta_count_all": lambda: (f"{STA}/Observations", {"$top": "0", "$count": "true"}),
        "sta_count_datastream": lambda: (observations(), {"$top": "0", "$count": "true"}),
    }


def _time_queries(
    client: httpx.Client, data: dataset.Dataset, repeat: int, datastreams: dict[str, int]
) -> dict[str, tuple[list[float], int]]:
    rng = random.Random(1)
    makers = _requests(data, rng, datastreams)
    seconds: dict[str, list[float]] = {name: [] for name in makers}
    items = dict.fromkeys(makers, 0)
    # Round by round, every kind in turn: a shared machine's load drifts, and so it touches
    # every kind alike, and the ratios between kinds (SensorThings over REST) hold.
    for i in range(WARMUP + repeat):
        for name, make in makers.items():
            path, params = make()
            started = time.perf_counter()
            response = client.get(path, params=params)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise BenchError(f"{name}: {response.status_code} {response.text[:300]}")
            if i >= WARMUP:
                seconds[name].append(elapsed)
                items[name] = max(items[name], _items(response.json()))
    return {name: (seconds[name], items[name]) for name in makers}


def _items(body: dict[str, Any]) -> int:
    """What one answer holds: readings, latest values or points of every series."""
    if "series" in body:
        return sum(len(s["points"]) for s in body["series"])
    if "@iot.count" in body:
        return int(body["@iot.count"])
    if "value" in body:
        return len(body["value"])
    return len(body.get("items", ()))


def _raw_rate(
    base: str, headers: dict[str, str], data: dataset.Dataset, clients: int, seconds: float
) -> tuple[float, Counter[int]]:
    """Raw 1-day series requests per second of `clients` concurrent clients."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def work(seed: int) -> None:
        make = _requests(data, random.Random(seed))["raw_1d"]
        with httpx.Client(base_url=base, headers=headers, timeout=60.0) as client:
            while time.monotonic() < deadline:
                path, params = make()
                status = client.get(path, params=params).status_code
                with lock:
                    statuses[status] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses[200] / (time.monotonic() - started), statuses
