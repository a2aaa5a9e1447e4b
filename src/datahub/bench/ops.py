"""`datahub bench ops`: the operator's views on a realistic fleet, and what alerting costs the
ingest.

The demo scenario's fleets (each `scale` times its size) report for `days` days into a
scratch database through the ingest's pipeline (one transaction per 2,000 messages, as the
ingest runs). Then, in the same run:
- the health refresher computes every device (seconds per device);
- the operator views answer N requests each through the ASGI app (p50/p95), beside the
  registry's `/v1/devices` page of the same devices as the baseline;
- the pipeline stores fresh batches (the last two hours' uplinks of another simulation
  seed), half without alert rules and half with a rule watching every temperature and
  one every battery voltage; the rules' share of a batch's time is reported.
`--reuse` keeps a database loaded by an earlier run of the same scale.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml
from fastapi.testclient import TestClient

import simulators
from datahub import audit
from datahub.api.app import create_app
from datahub.bench.services import database_settings, fresh_database, percentile
from datahub.catalog import open_catalog
from datahub.config import CatalogSettings, Settings, SourceSettings
from datahub.domain import City, SourceFormat
from datahub.errors import StorageUnavailable
from datahub.fairshare import admin
from datahub.ingest.mqtt import Message
from datahub.ingest.pipeline import Pipeline
from datahub.ops import rules
from datahub.ops.refresh import HealthRefresher
from datahub.ops.rule import Kind, Operator, Rule, Scope
from datahub.progress import Progress
from datahub.storage import db, devices, suppliers
from datahub.storage.suppliers import SupplierRow
from simulators.scenario import parse_scenario

log = logging.getLogger(__name__)

BATCH = 2000
FORMATS = {
    "ttn-dortmund": SourceFormat.TTN_V3,
    "chirpstack-schwerte": SourceFormat.CHIRPSTACK_V4_JSON,
}
CODECS = Path(__file__).resolve().parents[3] / "deploy" / "codecs"


@dataclass(frozen=True, slots=True)
class OpsOptions:
    scale: int = 5
    days: int = 7
    repeat: int = 20
    alert_batches: int = 20
    database: str = "datahub_bench_ops"
    reuse: bool = False


def _scenario(scale: int) -> simulators.Scenario:
    data = yaml.safe_load(simulators.DEFAULT_SCENARIO.read_text())
    for fleet in data["fleets"]:
        fleet["count"] = fleet["count"] * scale
    return parse_scenario(data)


def _messages(sims: Sequence[simulators.SimUplink], arrived: datetime) -> list[Message]:
    out = []
    for mid, sim in enumerate(sims, start=1):
        topic, body = sim.message(FORMATS[sim.source])
        out.append(Message(sim.source, topic, body, qos=1, mid=mid, arrived_at=arrived))
    return out


def _timed(repeat: int, call: Callable[[], Any]) -> dict[str, float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return {
        "p50_ms": round(percentile(seconds, 50) * 1000, 2),
        "p95_ms": round(percentile(seconds, 95) * 1000, 2),
    }


def run(base: Settings, options: OpsOptions, workdir: Path) -> dict[str, Any]:
    """Load the fleet (unless `reuse` finds it loaded), then measure the refresher, the
    views and the alert engine."""
    codecs = CatalogSettings(codecs_dir=CODECS if CODECS.is_dir() else None, codec_timeout_ms=5000)
    sources = tuple(
        SourceSettings(
            name=name, city=City.DORTMUND if "ttn" in name else City.SCHWERTE, format=fmt
        )
        for name, fmt in FORMATS.items()
    )
    scenario = _scenario(options.scale)
    now = datetime.now(UTC).replace(microsecond=0)
    settings = database_settings(base, options.database)
    loaded = options.reuse and _loaded(settings) == len(scenario.devices())
    if not loaded:
        settings = fresh_database(base, options.database)
    settings = settings.model_copy(update={"catalog": codecs, "sources": sources})
    catalog = open_catalog(settings)
    result: dict[str, Any] = {"devices": len(scenario.devices()), "days": options.days}
    if not loaded:
        result |= _load(settings, scenario, catalog, options, now)
    with db.connect(settings, autocommit=True, batch_writes=True) as conn:
        conn.execute("DELETE FROM device_health")
        conn.execute("DELETE FROM alert_rule WHERE name LIKE 'bench-%'")
        refresher = HealthRefresher(
            settings.health.model_copy(update={"min_age_s": 0}), clock=lambda: now
        )
        refresh_started = time.perf_counter()
        refresh_cpu = time.process_time()
        computed = 0
        while done := refresher.refresh_due(conn):
            computed += done
        refresh_s = time.perf_counter() - refresh_started
        refresh_cpu_s = time.process_time() - refresh_cpu
        # Uplinks of the last two hours not stored yet: a seed of this run's own gives the
        # devices other sessions, so none is a duplicate of an earlier run's.
        seed = f"alerts-{now.isoformat()}"
        fresh = list(
            simulators.generate(scenario, seed=seed, start=now - timedelta(hours=2), end=now)
        )
        result["alerts"] = _alert_cost(conn, settings, catalog, fresh, options, now)
        with conn.transaction():
            slug = f"bench-ops-{now:%H%M%S}"
            admin.add_consumer(
                conn,
                actor=audit.cli_actor("bench"),
                slug=slug,
                name="bench",
                purpose="public_interest",
                requests_per_s=100_000,
            )
            _, secret = admin.create_key(
                conn, actor=audit.cli_actor("bench"), consumer=slug, scopes=["read", "admin"]
            )
    result["health_refresh"] = {
        "devices": computed,
        "seconds": round(refresh_s, 2),
        "cpu_seconds_client": round(refresh_cpu_s, 2),
        "ms_per_device": round(refresh_s / max(computed, 1) * 1000, 2),
        "client_cpu_ms_per_device": round(refresh_cpu_s / max(computed, 1) * 1000, 2),
    }
    client = TestClient(create_app(settings), headers={"Authorization": f"Bearer {secret}"})
    with client:
        one = scenario.devices()[0].dev_eui

        def get(path: str, **params: Any) -> Callable[[], Any]:
            def call() -> None:
                response = client.get(path, params=params)
                assert response.status_code == 200, response.text

            return call

        client.get("/v1/operations/devices")  # warm up
        result["views"] = {
            "registry_page_1000 (baseline)": _timed(options.repeat, get("/v1/devices", limit=1000)),
            "operations_devices": _timed(options.repeat, get("/v1/operations/devices")),
            "operations_device_one": _timed(options.repeat, get(f"/v1/operations/devices/{one}")),
            "operations_gateways": _timed(options.repeat, get("/v1/operations/gateways")),
            "operations_coverage": _timed(options.repeat, get("/v1/operations/coverage")),
            "admin_unknown_devices": _timed(options.repeat, get("/v1/admin/unknown-devices")),
        }
    return result


def _loaded(settings: Settings) -> int:
    """How many devices the scratch database has; 0 when it does not exist."""
    try:
        with db.connect(settings) as conn:
            row = conn.execute("SELECT count(*) FROM device").fetchone()
    except (StorageUnavailable, psycopg.Error):
        return 0
    return int(row[0]) if row else 0


def _load(
    settings: Settings,
    scenario: simulators.Scenario,
    catalog: Any,
    options: OpsOptions,
    now: datetime,
) -> dict[str, Any]:
    """Register the fleet and store its uplinks of `days` days through the pipeline."""
    with db.connect(settings) as conn, conn.transaction():
        rows = simulators.registry_rows(scenario)
        ids = suppliers.upsert_suppliers(
            conn,
            suppliers=list(
                {
                    r["supplier"]: SupplierRow(
                        r["supplier"], r["supplier_name"], r["supplier_kind"]
                    )
                    for r in rows
                }.values()
            ),
        )
        devices.upsert_devices(
            conn, devices=[d.to_device() for d in scenario.devices()], supplier_ids=ids
        )
    history = list(
        simulators.generate(
            scenario, seed=1, start=now - timedelta(days=options.days), end=now - timedelta(hours=2)
        )
    )
    pipeline = Pipeline(settings, catalog=catalog, clock=lambda: now)
    progress = Progress("bench ops: load")
    started = time.perf_counter()
    with db.connect(settings, autocommit=True, batch_writes=True) as conn:
        for start in range(0, len(history), BATCH):
            with conn.transaction():
                pipeline.process(conn, _messages(history[start : start + BATCH], now))
            pipeline.committed()
            progress.update(start + BATCH, len(history), "uplinks")
        progress.finish()
        conn.execute("VACUUM ANALYZE")
    return {"uplinks_loaded": len(history), "load_s": round(time.perf_counter() - started, 1)}


def _alert_cost(
    conn: Any,
    settings: Settings,
    catalog: Any,
    fresh: list[simulators.SimUplink],
    options: OpsOptions,
    now: datetime,
) -> dict[str, Any]:
    """Store fresh batches without rules, then with rules; time the evaluation's share."""
    per_phase = options.alert_batches
    size = min(BATCH, len(fresh) // (2 * per_phase))
    results: dict[str, Any] = {"batches_per_phase": per_phase, "messages_per_batch": size}
    for phase, offset in (("no_rules", 0), ("with_rules", per_phase * size)):
        if phase == "with_rules":
            with conn.transaction():
                hot = Rule(
                    name="bench-hot", kind=Kind.THRESHOLD, scope=Scope.ALL, metric="temperature",
                    operator=Operator.ABOVE, open_value=22.0, clear_value=20.0, hold_s=600,
                )  # fmt: skip
                battery = Rule(
                    name="bench-battery", kind=Kind.BATTERY, scope=Scope.ALL,
                    metric="battery_voltage", open_value=3.3, clear_value=3.4,
                )  # fmt: skip
                for rule in (hot, battery):
                    rules.create_rule(
                        conn,
                        rule=rule,
                        alerts_settings=settings.alerts,
                        actor=audit.cli_actor("bench"),
                    )
        pipeline = Pipeline(settings, catalog=catalog, clock=lambda: now)
        evaluate = pipeline.alerts.evaluate
        spent: list[float] = []

        def timed_evaluate(
            *args: Any, _evaluate: Any = evaluate, _spent: list[float] = spent, **kwargs: Any
        ) -> int:
            started = time.perf_counter()
            try:
                return int(_evaluate(*args, **kwargs))
            finally:
                _spent.append(time.perf_counter() - started)

        pipeline.alerts.evaluate = timed_evaluate  # type: ignore[method-assign]
        batch_seconds = []
        for n in range(per_phase):
            sims = fresh[offset + n * size : offset + (n + 1) * size]
            started = time.perf_counter()
            with conn.transaction():
                pipeline.process(conn, _messages(sims, now))
            batch_seconds.append(time.perf_counter() - started)
            pipeline.committed()
        results[phase] = {
            "batch_p50_ms": round(percentile(batch_seconds, 50) * 1000, 2),
            "evaluate_p50_ms": round(percentile(spent, 50) * 1000, 3),
            "evaluate_share": round(sum(spent) / sum(batch_seconds), 4),
            "transitions": pipeline.stats.snapshot().get("alarm_transitions", 0),
        }
    return results
