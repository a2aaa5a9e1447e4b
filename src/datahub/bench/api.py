"""`datahub bench api`: the API under concurrent load, beside what the database alone
answers to the same statements at the same concurrency, on the query benchmark's data set.

For each number of clients and each request kind, back to back: `clients` concurrent
clients ask the real API (`datahub api`, its workers as configured) over HTTP for
`seconds`, then as many threads of the same load generator send the statements the
route reads its answer with straight to the database through a pool (`BASELINES`). The
load generator is a process of its own (bench/loadgen.py); the CPU of the API, the
database and the generator is reported per request. After the run the usage ledger must
equal the observations the clients received.

The bench data set's dataset is opened (licence class `open`) so that anonymous callers
read it; its readings stay as they are.
"""

from __future__ import annotations

import functools
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

from datahub import audit
from datahub.api.metric_index import MetricIndex
from datahub.bench import cpu, dataset
from datahub.bench.loadgen import Spec
from datahub.bench.services import BenchError, Service, database_config, free_port, percentile
from datahub.config import Settings
from datahub.fairshare import admin
from datahub.storage import access, db, devices, readings, usage
from datahub.storage.buckets import AggregateFn, DeviceScope

METRIC = "temperature"
# The consumer's and the anonymous callers' rate limits: high enough never to cap a run.
REQUESTS_PER_S = 1_000_000
REQUESTS_PER_KIND = 4000  # drawn at random, then asked in turn
KINDS = ("raw_1d", "latest_city", "aggregate_90d_hourly")
# The request the benchmark's targets are stated for.
TARGET_KIND, TARGET_CLIENTS, TARGET_RPS, TARGET_RATIO = "raw_1d", 16, 1000.0, 0.5
_PAGE = 1000  # api.page_size_default: the API asks for one row more


@dataclass(frozen=True, slots=True)
class ApiOptions:
    devices: int = 2000
    days: int = 90
    clients: tuple[int, ...] = (16, 64)
    seconds: float = 10.0
    warmup_s: float = 2.0
    rounds: int = 1
    workers: int | None = None  # default: api.workers of the settings
    prefix: str = "datahub_bench"  # of the data set's database name
    kinds: tuple[str, ...] = KINDS
    # An API already running on this machine, on the data set's database (another
    # version of it, say), instead of one started by the run; its CPU is that of the
    # process listening on its port, with its children.
    api_url: str | None = None


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _raw_1d(conn: psycopg.Connection, *, dev_eui: str, start: str, end: str) -> int:
    device = devices.device_statement(dev_eui=dev_eui).run(conn)
    assert device is not None
    rows = readings.readings_statement(
        device_id=device.id,
        metric=METRIC,
        start=_time(start),
        end=_time(end),
        limit=_PAGE + 1,
    ).run(conn)
    access.licences_statement(dataset_ids=[device.dataset_id]).run(conn)
    return len(rows)


@functools.cache
def _catalog() -> MetricIndex:
    return MetricIndex.from_decoders()


def _latest_city(conn: psycopg.Connection, *, city: str, dataset_ids: list[int]) -> int:
    rows = readings.select_latest(
        conn,
        metrics_of=_catalog().profile_metrics,
        city=city,
        dataset_ids=dataset_ids,
    )
    access.licences_statement(dataset_ids=sorted({row.dataset_id for row in rows})).run(conn)
    return len(rows)


def _aggregate_90d_hourly(conn: psycopg.Connection, *, dev_eui: str, start: str, end: str) -> int:
    device = devices.device_statement(dev_eui=dev_eui).run(conn)
    assert device is not None
    rows = readings.select_buckets(
        conn,
        scope=DeviceScope(device.id),
        metric=METRIC,
        start=_time(start),
        end=_time(end),
        width=timedelta(hours=1),
        fn=AggregateFn.AVG,
    )
    access.licences_statement(dataset_ids=[device.dataset_id]).run(conn)
    return len(rows)


# What each request kind's route reads its answer with: the same storage functions, so the
# same statements (the caller's key and rate slot, and metering, are the API's own work).
BASELINES: dict[str, Callable[..., int]] = {
    "raw_1d": _raw_1d,
    "latest_city": _latest_city,
    "aggregate_90d_hourly": _aggregate_90d_hourly,
}


def run(settings: Settings, options: ApiOptions, workdir: Path) -> dict[str, Any]:
    """Load or reuse the data set, start the API, run every cell; return the JSON document."""
    load_before = os.getloadavg()[0]
    if unknown := set(options.kinds) - set(KINDS):
        raise BenchError(f"no request kind {', '.join(sorted(unknown))}; kinds: {', '.join(KINDS)}")
    data = dataset.ensure(
        settings, devices_count=options.devices, days=options.days, prefix=options.prefix
    )
    key, open_ids = _prepare(data.settings)
    workers = options.workers or settings.api.workers
    api: Service | None = None
    if options.api_url is None:
        port = free_port()
        config = {
            **database_config(data.settings),
            "database": settings.database.model_dump(mode="json"),
            "api": {"port": port, "workers": workers},
            "fairshare": {"anonymous_requests_per_s": REQUESTS_PER_S},
        }
        api = Service("api", config, ["api", "--port", str(port)], workdir)
        base = f"http://127.0.0.1:{port}"
        server: cpu.Group | None = cpu.Group(pids=(api.process.pid,), leader=api.process.pid)
    else:
        base = options.api_url.rstrip("/")
        parts = urlsplit(base)
        server = cpu.server(parts.hostname or "localhost", parts.port or 80)
    requests = _requests(data, key, open_ids)
    target = conninfo_to_dict(data.settings.conninfo)
    database = cpu.server(str(target.get("host", "localhost")), int(target.get("port") or 5432))
    cells: list[dict[str, Any]] = []
    try:
        if api is not None:
            api.wait_http(f"{base}/health")
        with db.connect(data.settings) as conn:
            recorded_before = usage.sum_usage(conn)
        for round_ in range(options.rounds):
            for clients in options.clients:
                for kind in options.kinds:
                    on_api = _measure(
                        requests[kind]["http"](base, clients, options),
                        {"api": server, "database": database},
                    )
                    on_db = _measure(
                        requests[kind]["db"](data.settings.conninfo, clients, options),
                        {"database": database},
                    )
                    cells.append(
                        {
                            "round": round_ + 1,
                            "clients": clients,
                            "kind": kind,
                            "api": on_api,
                            "database": on_db,
                            "ratio": _ratio(on_api["ok_per_s"], on_db["ok_per_s"]),
                        }
                    )
        with db.connect(data.settings) as conn:
            recorded = usage.sum_usage(conn) - recorded_before
    finally:
        if api is not None:
            api.stop()
    served = sum(cell["api"].pop("observations") for cell in cells)
    for cell in cells:
        cell["database"].pop("observations")
    summary = _summary(cells)
    target_cell = summary.get(TARGET_KIND, {}).get(str(TARGET_CLIENTS))
    return {
        # Other work on the machine skews every figure: the 1-minute load, before and after.
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "devices": options.devices,
        "days": options.days,
        "workers": workers if api is not None else None,
        "api_url": options.api_url,
        "pool_size": settings.database.pool_size,
        "seconds": options.seconds,
        "rounds": options.rounds,
        "cells": cells,
        "summary": summary,
        "ledger": {"served": served, "recorded": recorded, "exact": served == recorded},
        "targets": {
            f"{TARGET_KIND}_{TARGET_CLIENTS}_clients_at_least_{TARGET_RPS:.0f}_per_s": (
                target_cell is not None and target_cell["api_per_s"] >= TARGET_RPS
            ),
            f"{TARGET_KIND}_{TARGET_CLIENTS}_clients_at_least_{TARGET_RATIO}_of_database": (
                target_cell is not None and target_cell["ratio"] >= TARGET_RATIO
            ),
            "ledger_exact": served == recorded,
        },
    }


def _prepare(settings: Settings) -> tuple[str, list[int]]:
    """Open the data set's dataset and make a consumer of this run; return its key and the
    open datasets' ids."""
    slug = f"bench-api-{uuid.uuid4().hex[:8]}"
    with db.connect(settings) as conn, conn.transaction():
        record = admin.get_dataset(conn, dataset.SUPPLIER.slug)
        if record.licence_class != "open":
            admin.update_dataset(
                conn,
                actor=audit.cli_actor("bench"),
                slug=record.slug,
                changes={
                    "licence_class": "open",
                    "licence_id": "CC-BY-4.0",
                    "licence_name": "Creative Commons Attribution 4.0",
                    "licence_url": "https://creativecommons.org/licenses/by/4.0/",
                },
                now=datetime.now(UTC),
            )
        admin.add_consumer(
            conn,
            actor=audit.cli_actor("bench"),
            slug=slug,
            name="datahub bench api",
            purpose="research",
            requests_per_s=REQUESTS_PER_S,
        )
        _, secret = admin.create_key(
            conn, actor=audit.cli_actor("bench"), consumer=slug, scopes=["read"], label="bench"
        )
        open_ids = list(access.select_open_datasets(conn))
    return secret, open_ids


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _requests(data: dataset.Dataset, key: str, open_ids: list[int]) -> dict[str, Any]:
    """Per kind, the makers of the HTTP spec and of its database baseline's spec."""
    rng = random.Random(1)
    headers = {"key": {"Authorization": f"Bearer {key}"}, "anonymous": {}}
    day = (_iso(data.end - timedelta(days=1)), _iso(data.end))
    whole = (_iso(data.start), _iso(data.end))
    devices_ = [rng.choice(data.dev_euis) for _ in range(REQUESTS_PER_KIND)]
    cities = [rng.choice(["dortmund", "schwerte"]) for _ in range(REQUESTS_PER_KIND)]

    def raw(span: tuple[str, str], path: str) -> tuple[list[Any], list[Any]]:
        http = [(path.format(dev_eui=d, start=span[0], end=span[1]), "key") for d in devices_]
        base = [("", {"dev_eui": d, "start": span[0], "end": span[1]}) for d in devices_]
        return http, base

    raw_http, raw_db = raw(
        day, "/v1/devices/{dev_eui}/readings?metric=temperature&from={start}&to={end}"
    )
    agg_http, agg_db = raw(
        whole,
        "/v1/readings/aggregate?device={dev_eui}&metric=temperature&bucket=1h&fn=avg"
        "&from={start}&to={end}",
    )
    kinds: dict[str, tuple[list[Any], list[Any], str]] = {
        "raw_1d": (raw_http, [("raw_1d", a) for _, a in raw_db], "items"),
        "latest_city": (
            [(f"/v1/latest?city={c}", "anonymous") for c in cities],
            [("latest_city", {"city": c, "dataset_ids": open_ids}) for c in cities],
            "items",
        ),
        "aggregate_90d_hourly": (
            agg_http,
            [("aggregate_90d_hourly", a) for _, a in agg_db],
            "points",
        ),
    }

    def spec(mode: str, asked: list[Any], clients: int, options: ApiOptions, **where: Any) -> Spec:
        return Spec(
            mode=mode,
            clients=clients,
            seconds=options.seconds,
            warmup_s=options.warmup_s,
            requests=asked,
            **where,
        )

    def makers(http: list[Any], base: list[Any], count: str) -> dict[str, Any]:
        return {
            "http": lambda url, clients, options: spec(
                "http", http, clients, options, base_url=url, headers=headers, count=count
            ),
            "db": lambda conninfo, clients, options: spec(
                "db", base, clients, options, conninfo=conninfo
            ),
        }

    return {kind: makers(*spec) for kind, spec in kinds.items()}


def _measure(spec: Spec, groups: dict[str, cpu.Group | None]) -> dict[str, Any]:
    """Run the load generator on one spec; return its figures with the CPU per request."""
    watch = cpu.Watch(groups)
    done = subprocess.run(
        [sys.executable, "-m", "datahub.bench.loadgen"],
        input=json.dumps(asdict(spec)),
        capture_output=True,
        text=True,
        check=False,
    )
    spent = watch.stop()
    if done.returncode != 0:
        raise BenchError(f"the load generator failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    seconds = result.pop("seconds")
    answered = max(1, sum(result["statuses"].values()))
    spent["generator"] = result.pop("cpu_s")
    spent.pop("children", None)  # the generator, counted by its own clock above
    return {
        "ok_per_s": round(result["ok_per_s"], 1),
        "p50_ms": round(percentile(seconds, 50) * 1000, 2),
        "p95_ms": round(percentile(seconds, 95) * 1000, 2),
        "p99_ms": round(percentile(seconds, 99) * 1000, 2),
        "statuses": result["statuses"],
        "observations": result["observations"],
        # Over the whole generator run (warm-up included), per answer.
        "cpu_us_per_request": {
            name: round(s * 1e6 / answered, 1) for name, s in sorted(spent.items())
        },
    }


def _ratio(api: float, database: float) -> float:
    return round(api / database, 3) if database > 0 else 0.0


def _summary(cells: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per kind and number of clients, the median over the rounds and the spread."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in KINDS:
        for clients in sorted({c["clients"] for c in cells}):
            mine = [c for c in cells if c["kind"] == kind and c["clients"] == clients]
            if not mine:
                continue
            api_rates = [c["api"]["ok_per_s"] for c in mine]
            db_rates = [c["database"]["ok_per_s"] for c in mine]
            ratios = [c["ratio"] for c in mine]
            summary.setdefault(kind, {})[str(clients)] = {
                "api_per_s": round(median(api_rates), 1),
                "api_per_s_range": [min(api_rates), max(api_rates)],
                "database_per_s": round(median(db_rates), 1),
                "database_per_s_range": [min(db_rates), max(db_rates)],
                "ratio": round(median(ratios), 3),
                "ratio_range": [min(ratios), max(ratios)],
                "api_p95_ms": median(c["api"]["p95_ms"] for c in mine),
                "errors": _errors(mine),
            }
    return summary


def _errors(cells: list[dict[str, Any]]) -> dict[str, int]:
    errors: dict[str, int] = {}
    for cell in cells:
        for status, n in cell["api"]["statuses"].items():
            if status != "200":
                errors[status] = errors.get(status, 0) + n
    return errors
