"""`datahub bench scale`: what one more ingest worker or API process adds on this machine,
and what an uplink and a request cost, the figures the sizing of docs/deployment.md is
derived from.

Ingest: the same number of new QoS 1 uplinks is published as fast as the broker takes them
to 1, 2 and 4 workers sharing the sources (bench/ingest.py's workers), timed until the last
is committed, with the CPU of the workers, the database, the broker and the publishers per
uplink; then the database's growth per uplink stored, after the rollups are refreshed, and
each worker's resident memory. API: raw series of a day (`raw_1d`) asked by 16 clients of 1
and 2 API processes (bench/api.py) on the query benchmark's data set, with the CPU per
request. Both in rounds, the order reversed every other round, so that the other work on a
shared machine spreads over every configuration; ratios are of the same round.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from datahub.bench import api, ceilings
from datahub.bench.api import ApiOptions
from datahub.bench.ingest import IngestOptions, Workers
from datahub.bench.services import fresh_database
from datahub.bench.workload import history_start, workload
from datahub.config import Settings, parse_broker_url
from datahub.ingest.refresher import Refresher
from datahub.storage import bench, db

API_KIND = "raw_1d"


@dataclass(frozen=True, slots=True)
class ScaleOptions:
    uplinks: int = 20_000  # distinct uplinks of each ingest run
    workers: tuple[int, ...] = (1, 2, 4)
    api_workers: tuple[int, ...] = (1, 2)
    rounds: int = 2
    api_clients: int = 16
    api_seconds: float = 5.0
    # The API's data set (bench/dataset.py, kept for the next run): a raw series of a day
    # costs about the same on a smaller one, which loads in a minute.
    devices: int = 200
    days: int = 14
    prefix: str = "datahub_bench_scale"  # of the API's data set's database name
    mqtt_version: str = "3.1.1"
    database: str = "datahub_bench_scale"  # dropped and created again by each run


def run(settings: Settings, options: ScaleOptions, workdir: Path) -> dict[str, Any]:
    """Measure ingest by workers and the API by processes; return the JSON document."""
    load_before = os.getloadavg()[0]
    ingest = _ingest(settings, options, workdir)
    api_runs = _api(settings, options, workdir)
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
        "rounds": options.rounds,
        "ingest": ingest,
        "api": api_runs,
    }


def ordered(counts: tuple[int, ...], round_: int) -> tuple[int, ...]:
    """The configurations of a round: in order, reversed every other round."""
    return counts if round_ % 2 == 0 else tuple(reversed(counts))


def _ingest(settings: Settings, options: ScaleOptions, workdir: Path) -> dict[str, Any]:
    broker = parse_broker_url(settings.broker_url)
    work = workload()
    target = fresh_database(settings, options.database)
    with db.connect(target) as conn:
        work.register(conn)
        conn.commit()
        size_before = bench.database_bytes(conn)
        stored_before, readings_before = bench.count_stored(conn)
    start = history_start(options.uplinks)
    runs: list[dict[str, Any]] = []
    for round_ in range(options.rounds):
        for count in ordered(options.workers, round_):
            sets = work.messages(count=options.uplinks, seed=1000 + len(runs), start=start)
            expected = sum(len(bodies) for _, bodies in sets.values())
            workers = Workers(
                target,
                work,
                qos=1,
                options=IngestOptions(workers=count, mqtt_version=options.mqtt_version),
                workdir=workdir,
            )
            try:
                rate, spent = workers.ingest(sets, expected=expected, broker=broker)
                rss = workers.resident_mib()
            finally:
                workers.stop()
                ceilings.end_sessions(broker, workers.client_ids)
            runs.append(
                {
                    "round": round_ + 1,
                    "workers": count,
                    "uplinks": expected,
                    "uplinks_per_s": round(rate.per_s),
                    "cpu_us_per_uplink": spent,
                    "worker_rss_mib": rss,
                }
            )
    with db.connect(target, autocommit=True) as conn:
        # As the workers' refresher would have by the next round: the rollups are part of
        # what an uplink costs on disk.
        Refresher(target, stop_event=threading.Event()).refresh_all(conn)
        stored, readings = bench.count_stored(conn)
        stored -= stored_before
        grown = bench.database_bytes(conn) - size_before
    summary = summarize(
        runs, by="workers", rate="uplinks_per_s", cpu="cpu_us_per_uplink", ratio="to_one_worker"
    )
    for name, figures in summary.items():
        figures["worker_rss_mib"] = max(
            max(r["worker_rss_mib"]) for r in runs if str(r["workers"]) == name
        )
    return {
        "uplinks_per_run": options.uplinks,
        "mqtt_version": options.mqtt_version,
        "runs": runs,
        "summary": summary,
        "stored_uplinks": stored,
        "readings_per_uplink": round((readings - readings_before) / stored, 3) if stored else None,
        "database_bytes_per_uplink": round(grown / stored) if stored else None,
    }


def _api(settings: Settings, options: ScaleOptions, workdir: Path) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    exact = True
    for round_ in range(options.rounds):
        for count in ordered(options.api_workers, round_):
            result = api.run(
                settings,
                ApiOptions(
                    devices=options.devices,
                    days=options.days,
                    clients=(options.api_clients,),
                    seconds=options.api_seconds,
                    warmup_s=1.0,
                    workers=count,
                    kinds=(API_KIND,),
                    prefix=options.prefix,
                ),
                workdir,
            )
            [cell] = result["cells"]
            exact = exact and bool(result["ledger"]["exact"])
            runs.append(
                {
                    "round": round_ + 1,
                    "processes": count,
                    "requests_per_s": cell["api"]["ok_per_s"],
                    "p95_ms": cell["api"]["p95_ms"],
                    "statuses": cell["api"]["statuses"],
                    "cpu_us_per_request": cell["api"]["cpu_us_per_request"],
                    "database_alone_per_s": cell["database"]["ok_per_s"],
                }
            )
    summary = summarize(
        runs,
        by="processes",
        rate="requests_per_s",
        cpu="cpu_us_per_request",
        ratio="to_one_process",
    )
    return {
        "kind": API_KIND,
        "clients": options.api_clients,
        "seconds": options.api_seconds,
        "devices": options.devices,
        "days": options.days,
        "runs": runs,
        "summary": summary,
        "ledger_exact": exact,
    }


def summarize(
    runs: list[dict[str, Any]], *, by: str, rate: str, cpu: str, ratio: str
) -> dict[str, dict[str, Any]]:
    """Per configuration (`by`, in the order first run): the median rate over the rounds,
    its spread, its ratio to the first configuration in each round, and the median CPU of
    each part."""
    first = runs[0][by]
    summary: dict[str, dict[str, Any]] = {}
    for count in dict.fromkeys(r[by] for r in runs):
        mine = [r for r in runs if r[by] == count]
        rates = [r[rate] for r in mine]
        summary[str(count)] = {
            rate: median(rates),
            "spread": [min(rates), max(rates)],
            ratio: [
                round(r[rate] / one[rate], 2)
                for r in mine
                for one in runs
                if one[by] == first and one["round"] == r["round"]
            ],
            cpu: {part: median(r[cpu][part] for r in mine) for part in mine[0][cpu]},
        }
    return summary
