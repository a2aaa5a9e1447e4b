"""The benchmarks at tiny sizes: every figure is measured and has the expected shape.

The real sizes run by `make bench` only (docs/performance.md)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from realservices import BACKENDS, BROKER_URL, drop_database

from datahub.bench import api, ingest, query, scale
from datahub.config import Settings

pytestmark = pytest.mark.services


def settings() -> Settings:
    return Settings(database_url=BACKENDS["timescaledb"], broker_url=BROKER_URL)  # type: ignore[arg-type]


def test_bench_query_times_every_query(tmp_path: Path) -> None:
    prefix = f"datahub_test_bench_{os.getpid()}"
    options = query.QueryOptions(
        devices=4, days=2, repeat=3, clients=2, rps_seconds=0.5, prefix=prefix
    )
    try:
        result = query.run(settings(), options, tmp_path)
        reused = query.run(settings(), options, tmp_path)
    finally:
        drop_database("timescaledb", f"{prefix}_q4x2")
    assert result["readings"] == 4 * 2 * 96 * 3
    assert not result["dataset_reused"] and reused["dataset_reused"]  # the data set is kept
    assert result["load"]["total_s"] > 0 and reused["load"] == result["load"]
    assert result["aggregate_90d_hourly_items"] == 2 * 24
    assert result["raw_1d_items"] == 96
    assert result["latest_city_items"] == 2 * 3  # two devices per city, three metrics each
    assert result["city_daily_90d_items"] == 2
    # SensorThings answers the same questions with the same data, and counts exactly.
    assert result["sta_raw_1d_items"] == 96
    assert result["sta_aggregate_90d_hourly_items"] == 2 * 24
    assert result["sta_count_datastream_items"] == 2 * 96
    assert result["sta_count_all_items"] == result["readings"]
    assert result["sta_raw_1d_p95_ratio"] > 0
    for name in ("aggregate_90d_hourly", "raw_1d", "latest_city", "city_daily_90d"):
        assert 0 < result[f"{name}_p50_ms"] <= result[f"{name}_p95_ms"]
    assert result["raw_rps_2_clients"] > 0 and set(result["raw_rps_statuses"]) == {200}


def test_bench_api_measures_the_api_beside_the_database(tmp_path: Path) -> None:
    prefix = f"datahub_test_bench_api_{os.getpid()}"
    options = api.ApiOptions(
        devices=4, days=2, clients=(2,), seconds=1.0, warmup_s=0.5, workers=2, prefix=prefix
    )
    try:
        result = api.run(settings(), options, tmp_path)
    finally:
        drop_database("timescaledb", f"{prefix}_q4x2")
    kinds = {(cell["kind"], cell["clients"]) for cell in result["cells"]}
    assert kinds == {(kind, 2) for kind in api.KINDS}
    for cell in result["cells"]:
        for side in ("api", "database"):
            figures = cell[side]
            assert set(figures["statuses"]) == {"200"}, (cell["kind"], side, figures)
            assert figures["ok_per_s"] > 0, (cell["kind"], side, figures)
            assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
            assert "generator" in figures["cpu_us_per_request"]
        assert cell["ratio"] > 0
    # Every observation the clients received is in the ledger, across two API processes.
    assert result["ledger"]["exact"] and result["ledger"]["served"] > 0
    assert result["workers"] == 2


def test_bench_ingest_measures_ceilings_and_the_real_ingest(tmp_path: Path) -> None:
    options = ingest.IngestOptions(
        uplinks=300,
        workers=2,
        naive_uplinks=50,
        latency_rate=100,
        latency_seconds=1.0,
        database=f"datahub_test_bench_ingest_{os.getpid()}",
    )
    try:
        result = ingest.run(settings(), options, tmp_path)
    finally:
        drop_database("timescaledb", options.database)
    for key in (
        "broker_ceiling_msgs_per_s",
        "db_copy_ceiling_rows_per_s",
        "naive_uplinks_per_s",
        "end_to_end_uplinks_per_s",
        "end_to_end_qos1_uplinks_per_s",
    ):
        assert result[key] > 0, key
    assert result["uplinks"] == 300
    assert 1 < result["readings_per_uplink"] < 5
    # How many go out in the second depends on the machine's load; each one sent is timed
    # to its commit (the run fails if one is never committed).
    assert result["latency_uplinks"] >= 1
    assert 0 < result["latency_p50_ms"] <= result["latency_p99_ms"]
    assert all(math.isfinite(v) for v in result["ratios"].values())
    # Where the CPU went, per QoS: the workers, the publishers and the machine always (a
    # run this short may take the workers less than a clock tick); budgets per target.
    for qos in ("qos0", "qos1"):
        spent = result["cpu_us_per_uplink"][qos]
        assert {"ingest", "publishers", "machine"} <= set(spent), spent
        assert spent["machine"] > 0 and all(v >= 0 for v in spent.values()), spent
    assert all(b > 0 for b in result["cpu_budget_us_per_uplink"].values())


def test_bench_scale_measures_workers_and_processes(tmp_path: Path) -> None:
    prefix = f"datahub_test_bench_scale_{os.getpid()}"
    options = scale.ScaleOptions(
        uplinks=200,
        workers=(1, 2),
        api_workers=(1, 2),
        rounds=1,
        api_seconds=0.5,
        devices=4,
        days=2,
        prefix=prefix,
        database=f"{prefix}_ingest",
    )
    try:
        result = scale.run(settings(), options, tmp_path)
    finally:
        drop_database("timescaledb", f"{prefix}_q4x2")
        drop_database("timescaledb", options.database)
    ingest_runs, api_runs = result["ingest"]["runs"], result["api"]["runs"]
    assert [r["workers"] for r in ingest_runs] == [1, 2]
    assert [r["processes"] for r in api_runs] == [1, 2]
    assert result["ingest"]["stored_uplinks"] == sum(r["uplinks"] for r in ingest_runs)
    assert all(len(r["worker_rss_mib"]) == r["workers"] for r in ingest_runs)
    assert result["ingest"]["database_bytes_per_uplink"] > 0
    for count, figures in result["ingest"]["summary"].items():
        assert figures["uplinks_per_s"] > 0 and len(figures["to_one_worker"]) == 1, count
        assert figures["cpu_us_per_uplink"]["machine"] > 0
    assert result["ingest"]["summary"]["1"]["to_one_worker"] == [1.0]
    for count, figures in result["api"]["summary"].items():
        assert figures["requests_per_s"] > 0 and len(figures["to_one_process"]) == 1, count
        assert "api" in figures["cpu_us_per_request"]
    assert result["api"]["ledger_exact"]


def test_bench_scale_reverses_the_order_every_other_round() -> None:
    assert [scale.ordered((1, 2, 4), r) for r in range(3)] == [(1, 2, 4), (4, 2, 1), (1, 2, 4)]
