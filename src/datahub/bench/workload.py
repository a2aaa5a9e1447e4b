"""The ingest benchmark's messages: the demo scenario's fleets (mixed models, both cities,
TTN v3 and ChirpStack v4 envelopes), encoded by the simulator, under topics of this run only.

Every figure of one run is measured on the same messages. Each source's messages go to one
topic of its own (a device's topic; the ingest takes identity from the body, never the
topic), so that one C publisher (`mosquitto_pub -l`, a message per line) sends a source.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml

import simulators
from datahub.domain import SourceFormat
from datahub.storage import devices, suppliers
from datahub.storage.suppliers import SupplierRow
from simulators.envelopes import stable_uuid
from simulators.scenario import parse_scenario

# Where the demo keeps the JavaScript codec of the one fleet no built-in decoder covers.
CODECS_DIR = Path(simulators.__file__).resolve().parent.parent / "deploy" / "codecs"
FORMATS = {
    "ttn-dortmund": SourceFormat.TTN_V3,
    "chirpstack-schwerte": SourceFormat.CHIRPSTACK_V4_JSON,
}


@dataclass(frozen=True)
class Workload:
    """A run's scenario, its sources' topic filters, and message sets to publish."""

    run: str
    scenario: simulators.Scenario
    filters: dict[str, str]  # source name -> topic filter the ingest subscribes to

    def source_config(
        self, *, qos: int, shared: bool, client_id: str, mqtt_version: str = "3.1.1"
    ) -> list[dict[str, Any]]:
        """The `sources:` of an ingest worker's config for this run."""
        return [
            {
                "name": name,
                "city": "dortmund" if name == "ttn-dortmund" else "schwerte",
                "format": str(fmt),
                "topic": f"$share/bench-{self.run}/{self.filters[name]}"
                if shared
                else self.filters[name],
                "qos": qos,
                "mqtt_version": mqtt_version,
                "client_id": f"{client_id}-{name}",
            }
            for name, fmt in FORMATS.items()
        ]

    def messages(
        self, *, count: int, seed: int, start: datetime
    ) -> dict[str, tuple[str, list[bytes]]]:
        """`count` uplinks from `start` on: source -> (topic, bodies), in time order."""
        topics: dict[str, str] = {}
        bodies: dict[str, list[bytes]] = defaultdict(list)
        uplinks = simulators.generate(
            self.scenario, seed=seed, start=start, count=count, end=datetime.now(UTC)
        )
        for uplink in uplinks:
            topic, body = uplink.message(FORMATS[uplink.source])
            topics.setdefault(uplink.source, topic)
            if b"\n" in body:
                raise ValueError("a message body spans lines; mosquitto_pub -l would split it")
            bodies[uplink.source].append(body)
        return {source: (topics[source], bodies[source]) for source in topics}

    def register(self, conn: psycopg.Connection) -> int:
        """Register the scenario's devices; return how many."""
        rows = simulators.registry_rows(self.scenario)
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
        fleet = [d.to_device() for d in self.scenario.devices()]
        devices.upsert_devices(conn, devices=fleet, supplier_ids=ids)
        return len(fleet)


def workload() -> Workload:
    """The demo scenario under applications of a new run (so nothing else is subscribed)."""
    run = uuid.uuid4().hex[:8]
    data = yaml.safe_load(simulators.DEFAULT_SCENARIO.read_text(encoding="utf-8"))
    apps = {"dortmund": f"bench-dortmund-{run}", "schwerte": f"bench-schwerte-{run}"}
    if not CODECS_DIR.is_dir():  # installed without the repository: no JavaScript fleet
        data["fleets"] = [f for f in data["fleets"] if not f["profile"].startswith("datahub/")]
    for fleet in data["fleets"]:
        fleet["application"] = apps[fleet["city"]]
    scenario = parse_scenario(data)
    ttn_tenant = scenario.source("ttn-dortmund").tenant
    cs_app = stable_uuid(
        "application", scenario.source("chirpstack-schwerte").tenant, apps["schwerte"]
    )
    filters = {
        "ttn-dortmund": f"v3/{apps['dortmund']}@{ttn_tenant}/devices/+/up",
        "chirpstack-schwerte": f"application/{cs_app}/device/+/event/up",
    }
    return Workload(run=run, scenario=scenario, filters=filters)


def history_start(count: int) -> datetime:
    """A start far enough back that `count` uplinks of the demo fleets end before now."""
    # The demo fleets send about 0.65 uplinks/s together; keep a margin of a third.
    return datetime.now(UTC) - timedelta(seconds=count / 0.65 * 1.35 + 3600)
