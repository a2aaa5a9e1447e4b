"""End to end: simulated uplinks of both cities through Mosquitto into a running `datahub
ingest`, then out of the REST API: exactly the readings the payloads encode, each uplink
stored once although every message was published twice. The ingest runs with the demo's
codec directory, so the Bürgerlabor's thermometers are decoded by their JavaScript codec."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml
from democatalog import CODEC_TIMEOUT_MS, DEPLOY_CODECS, demo_catalog
from fastapi.testclient import TestClient
from prometheus_text import parse_samples, total
from realservices import BROKER_URL, Database, temporary_database
from waiting import serving, wait_until

import simulators
from datahub.api.app import create_app
from datahub.config import parse_broker_url
from datahub.domain import SourceFormat
from datahub.fairshare import admin
from datahub.ingest import decode, normalize
from simulators.envelopes import stable_uuid
from simulators.scenario import parse_scenario

RUN = uuid.uuid4().hex[:8]
# Each city's fleets publish under an application of this run only, so that anything else
# on the shared broker (a running demo, say) is not subscribed to.
APPS = {"dortmund": f"e2e-dortmund-{RUN}", "schwerte": f"e2e-schwerte-{RUN}"}
FIRST, SENTINELS = 600, 60
JS_PROFILE = "datahub/example-thermometer"  # decoded by deploy/codecs, not a built-in


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


METRICS_PORT = _free_port()
INGEST_URL = f"http://127.0.0.1:{METRICS_PORT}"


def scenario() -> simulators.Scenario:
    data = yaml.safe_load(simulators.DEFAULT_SCENARIO.read_text())
    for fleet in data["fleets"]:
        fleet["application"] = APPS[fleet["city"]]
    return parse_scenario(data)


def tenant(scn: simulators.Scenario, name: str) -> str:
    return scn.source(name).tenant


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    with temporary_database("timescaledb", "datahub_test_e2e") as database:
        yield database


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scn = scenario()
    ttn_tenant = tenant(scn, "ttn-dortmund")
    cs_app = stable_uuid("application", tenant(scn, "chirpstack-schwerte"), APPS["schwerte"])
    config = {
        "broker_url": BROKER_URL,
        "ingest": {"batch_size": 500, "batch_wait_ms": 50, "metrics_port": METRICS_PORT},
        "catalog": {"codecs_dir": str(DEPLOY_CODECS), "codec_timeout_ms": CODEC_TIMEOUT_MS},
        "sources": [
            {
                "name": "ttn-dortmund",
                "city": "dortmund",
                "format": "ttn-v3",
                "topic": f"v3/{APPS['dortmund']}@{ttn_tenant}/devices/+/up",
                "qos": 1,
                "client_id": f"e2e-ttn-{RUN}",
            },
            {
                "name": "chirpstack-schwerte",
                "city": "schwerte",
                "format": "chirpstack-v4-json",
                "topic": f"application/{cs_app}/device/+/event/up",
                "qos": 1,
                "mqtt_version": "5",
                "client_id": f"e2e-cs-{RUN}",
            },
        ],
    }
    path = tmp_path_factory.mktemp("e2e") / "datahub.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def datahub(config: Path, database: Database, *args: str) -> list[str]:
    return [sys.executable, "-m", "datahub.cli", "--config", str(config), *args]


@pytest.fixture(scope="module")
def ingest(
    config_file: Path, database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "DATAHUB_DATABASE_URL": database.url}
    registry = tmp_path_factory.mktemp("registry") / "devices.csv"
    simulators.write_registry_csv(scenario(), registry)
    subprocess.run(
        datahub(config_file, database, "devices", "import", str(registry)), env=env, check=True
    )
    log = (tmp_path_factory.mktemp("logs") / "ingest.log").open("wb")
    proc = subprocess.Popen(
        datahub(config_file, database, "ingest"), env=env, stdout=log, stderr=subprocess.STDOUT
    )
    yield proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def publish(sims: list[simulators.SimUplink], config: Path) -> None:
    broker = parse_broker_url(BROKER_URL)
    formats = {
        "ttn-dortmund": SourceFormat.TTN_V3,
        "chirpstack-schwerte": SourceFormat.CHIRPSTACK_V4_JSON,
    }
    versions = {"ttn-dortmund": "3.1.1", "chirpstack-schwerte": "5"}
    targets = {
        name: simulators.Target(fmt, broker.host, broker.port, mqtt_version=versions[name])
        for name, fmt in formats.items()
    }
    report = simulators.publish(sims, targets, qos=1)
    assert report.published == len(sims)


def wait_subscribed(proc: subprocess.Popen[bytes]) -> None:
    """Wait until the ingest's readiness check says every source is subscribed."""
    wait_until("the ingest to subscribe", lambda: serving(INGEST_URL, proc), timeout=60)


def alive(proc: subprocess.Popen[bytes]) -> bool:
    assert proc.poll() is None, "the ingest process died"
    return True


def uplink_count(database: Database) -> int:
    with psycopg.connect(database.url) as conn:
        return conn.execute("SELECT count(*) FROM uplink").fetchone()[0]  # type: ignore[index]


def wait_for(database: Database, proc: subprocess.Popen[bytes], expected: int) -> None:
    wait_until(
        f"{expected} uplinks to be stored",
        lambda: alive(proc) and uplink_count(database) >= expected,
        timeout=120,
    )


def ingest_total(name: str) -> float:
    with urllib.request.urlopen(f"{INGEST_URL}/metrics", timeout=5) as response:
        return total(parse_samples(response.read().decode()), name)


def expected_readings(sims: list[simulators.SimUplink]) -> dict[str, set[tuple[str, str, float]]]:
    out: dict[str, set[tuple[str, str, float]]] = {}
    for sim in sims:
        profile = demo_catalog()[sim.device.profile]
        data = decode.decode_uplink(profile, f_port=sim.f_port, payload=sim.payload).data
        norm = normalize.to_readings(
            data, profile.mappings, time=sim.time, dev_eui=sim.device.dev_eui
        )
        # As the API renders them: at the resolution the profile's mapping declares.
        places = {m.metric: m.decimals for m in profile.mappings}
        out.setdefault(sim.device.dev_eui, set()).update(
            (
                r.time.isoformat().replace("+00:00", "Z"),
                r.metric,
                r.value if places[r.metric] is None else round(r.value, places[r.metric]),
            )
            for r in norm.readings
        )
    return out


def uplink_decoders(database: Database, dev_euis: set[str]) -> set[tuple[str, str | None]]:
    """The (decode_status, decoder) pairs stored on the uplinks of these devices."""
    with psycopg.connect(database.url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT decode_status, decoder FROM uplink WHERE dev_eui = ANY(%s)",
            [sorted(dev_euis)],
        ).fetchall()
    return {(str(status), decoder) for status, decoder in rows}


def test_uplinks_of_both_cities_come_back_out_of_the_api_exactly_once(
    ingest: subprocess.Popen[bytes], config_file: Path, database: Database
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    sims = list(simulators.generate(scenario(), seed=11, start=start, count=FIRST + SENTINELS))
    first, sentinels = sims[:FIRST], sims[FIRST:]
    assert {s.device.city for s in first} == {"dortmund", "schwerte"}
    js_devices = {s.device.dev_eui for s in first if s.device.profile == JS_PROFILE}
    assert js_devices, "the JavaScript-codec fleet must report in the run"
    wait_subscribed(ingest)  # a message published before its session exists is not kept

    publish(first, config_file)
    wait_for(database, ingest, FIRST)
    publish(first, config_file)  # every message again: a network server's redelivery
    # Later uplinks on both connections: once stored, the duplicates before them are through.
    publish(sentinels, config_file)
    wait_for(database, ingest, FIRST + SENTINELS)
    wait_until(
        "every redelivery to be counted a duplicate",
        lambda: ingest_total("datahub_ingest_duplicates_total") >= FIRST,
        timeout=60,
    )
    assert uplink_count(database) == FIRST + SENTINELS
    js_decoder = decode.decoder_name(demo_catalog()[JS_PROFILE])
    assert js_decoder.startswith(f"{JS_PROFILE}@")  # the codec file's sha256 names it
    assert uplink_decoders(database, js_devices) == {("decoded", js_decoder)}

    expected = expected_readings(sims)
    # The demo fleets' datasets are restricted until the fair-share seed opens them: read
    # them as an administrator, who sees every dataset, without a rate limit in the way.
    with psycopg.connect(database.url) as conn:
        admin.add_consumer(
            conn,
            actor="cli:test",
            slug="e2e",
            name="end to end",
            purpose="public_interest",
            requests_per_s=10_000,
        )
        _, secret = admin.create_key(
            conn, actor="cli:test", consumer="e2e", scopes=["read", "admin"], label="e2e"
        )
    client = TestClient(
        create_app(database.settings()), headers={"Authorization": f"Bearer {secret}"}
    )
    with client:
        served: dict[str, set[tuple[str, str, float]]] = {}
        for dev_eui in expected:
            cursor = None
            while True:
                params = {
                    "from": start.isoformat(),
                    "to": (start + timedelta(hours=6)).isoformat(),
                    "limit": 50,
                }
                if cursor:
                    params["cursor"] = cursor
                page = client.get(f"/v1/devices/{dev_eui}/readings", params=params)
                assert page.status_code == 200, page.text
                body = page.json()
                served.setdefault(dev_eui, set()).update(
                    (i["time"], i["metric"], i["value"]) for i in body["items"]
                )
                cursor = body["next_cursor"]
                if not cursor:
                    break
        assert served == expected
        js_metrics = {m for e in js_devices for _, m, _ in served[e]}
        assert js_metrics == {"temperature", "relative_humidity", "battery_voltage"}
        assert sum(map(len, served.values())) == sum(map(len, expected.values()))

        devices = client.get("/v1/devices", params={"limit": 1000}).json()["items"]
        seen = {d["dev_eui"] for d in devices if d["last_seen"]}
        assert seen == set(expected)
        for city in ("dortmund", "schwerte"):
            latest = client.get("/v1/latest", params={"city": city}).json()["items"]
            assert latest and {i["city"] for i in latest} == {city}

    ingest.send_signal(signal.SIGTERM)
    assert ingest.wait(timeout=60) == 0
