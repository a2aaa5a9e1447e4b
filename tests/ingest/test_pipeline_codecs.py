"""JavaScript codecs from a codec directory, through the real pipeline and database."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from realservices import Database

import simulators
from datahub.catalog import open_catalog
from datahub.config import CatalogSettings, Settings, SourceSettings
from datahub.domain import City, SourceFormat
from datahub.ingest import decode
from datahub.ingest.mqtt import Message
from datahub.ingest.pipeline import DeviceCache, Pipeline
from datahub.storage import devices, suppliers
from datahub.storage.suppliers import SupplierRow

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SOURCE = SourceSettings(name="ttn-dortmund", city=City.DORTMUND, format=SourceFormat.TTN_V3)
CODECS = Path(__file__).parents[1] / "fixtures" / "codecs"
YAML = """\
description: Test thermometer in the TTN style
reporting_interval_s: 600
metrics:
  - {path: [temperature], metric: temperature, kind: gauge}
  - {path: [humidity], metric: relative_humidity, kind: gauge}
  - {path: [battery, volts], metric: battery_voltage, kind: gauge}
"""
_mid = itertools.count(1)


@pytest.fixture
def device(conn: psycopg.Connection) -> simulators.SimUplink:
    """An uplink of a Dortmund demo device, registered with the codec directory's profile."""
    scenario = simulators.load_scenario()
    sims = simulators.generate(scenario, seed=7, start=NOW - timedelta(hours=1), count=50)
    sim = next(s for s in sims if s.source == SOURCE.name)
    row = next(r for r in simulators.registry_rows(scenario) if r["dev_eui"] == sim.device.dev_eui)
    ids = suppliers.upsert_suppliers(
        conn, suppliers=[SupplierRow(row["supplier"], row["supplier_name"], row["supplier_kind"])]
    )
    entry = dataclasses.replace(sim.device.to_device(), profile="acme/thermo")
    devices.upsert_devices(conn, devices=[entry], supplier_ids=ids)
    return sim


def add_codec(root: Path, profile_id: str) -> Path:
    target = root / f"{profile_id}.js"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CODECS / "ttn_thermometer.js", target)
    target.with_suffix(".yaml").write_text(YAML, encoding="utf-8")
    return target


def message(sim: simulators.SimUplink, payload: bytes, f_cnt: int) -> Message:
    topic, body = simulators.build_message(
        SOURCE.format,
        device=sim.device,
        f_cnt=f_cnt,
        f_port=1,
        payload=payload,
        time=sim.time,
        radio=sim.radio,
        session=sim.session,
    )
    return Message(SOURCE.name, topic, body, qos=1, mid=next(_mid), arrived_at=NOW)


def codec_settings(database: Database, codecs_dir: Path) -> Settings:
    return database.settings(sources=(SOURCE,), catalog=CatalogSettings(codecs_dir=codecs_dir))


def test_a_js_codec_decodes_uplinks_into_readings(
    conn: psycopg.Connection, database: Database, device: simulators.SimUplink, tmp_path: Path
) -> None:
    js_file = add_codec(tmp_path, "acme/thermo")
    settings = codec_settings(database, tmp_path)
    catalog = open_catalog(settings)
    pipeline = Pipeline(settings, catalog=catalog, clock=lambda: NOW)
    stored = pipeline.process(conn, [message(device, bytes.fromhex("0a2b5009c4"), 1)])
    assert (stored.uplinks, stored.readings) == (1, 3)
    version = hashlib.sha256(js_file.read_bytes()).hexdigest()[:12]
    status, decoder = conn.execute("SELECT decode_status, decoder FROM uplink").fetchone()  # type: ignore[misc]
    assert status == "decoded"
    # The codec's content names the decoder (the name may carry a mapping digest after it).
    assert decoder == decode.decoder_name(catalog["acme/thermo"])
    assert decoder.startswith(f"acme/thermo@{version}")
    readings = conn.execute("SELECT metric, value FROM reading ORDER BY metric").fetchall()
    assert readings == [
        ("battery_voltage", 2.5),
        ("relative_humidity", 40.0),
        ("temperature", 26.03),
    ]


def test_a_codec_failure_is_a_decode_failure_not_a_crash(
    conn: psycopg.Connection, database: Database, device: simulators.SimUplink, tmp_path: Path
) -> None:
    add_codec(tmp_path, "acme/thermo")
    settings = codec_settings(database, tmp_path)
    stored = Pipeline(settings, clock=lambda: NOW).process(
        conn, [message(device, bytes.fromhex("0a2b"), 2)]
    )
    assert (stored.uplinks, stored.readings, stored.dead_letters) == (1, 0, 1)
    status, error = conn.execute("SELECT decode_status, decode_error FROM uplink").fetchone()  # type: ignore[misc]
    assert status == "failed"
    assert "payload of 2 bytes, expected 5" in error


def test_a_batch_goes_to_the_codec_at_once_and_each_uplink_keeps_its_outcome(
    conn: psycopg.Connection, database: Database, device: simulators.SimUplink, tmp_path: Path
) -> None:
    add_codec(tmp_path, "acme/thermo")
    settings = codec_settings(database, tmp_path)
    payloads = ["0a2b5009c4", "0a2b", "ff38510960", "", "0a2c5009c4"]
    batch = [
        message(
            dataclasses.replace(device, time=device.time + timedelta(minutes=n)),
            bytes.fromhex(p),
            n,
        )
        for n, p in enumerate(payloads, 1)
    ]
    stored = Pipeline(settings, clock=lambda: NOW).process(conn, batch)
    assert (stored.uplinks, stored.readings, stored.dead_letters) == (5, 9, 2)
    rows = conn.execute(
        "SELECT f_cnt, decode_status, decode_error FROM uplink ORDER BY f_cnt"
    ).fetchall()
    assert [(f_cnt, status) for f_cnt, status, _ in rows] == [
        (1, "decoded"),
        (2, "failed"),
        (3, "decoded"),
        (4, "failed"),
        (5, "decoded"),
    ]
    assert "payload of 2 bytes, expected 5" in rows[1][2]
    assert "payload of 0 bytes, expected 5" in rows[3][2]
    temperatures = conn.execute(
        "SELECT value FROM reading WHERE metric = 'temperature' ORDER BY time, value"
    ).fetchall()
    assert sorted(t for (t,) in temperatures) == [-2.0, 26.03, 26.04]


def test_a_codec_added_at_run_time_is_picked_up_on_the_next_refresh(
    conn: psycopg.Connection, database: Database, device: simulators.SimUplink, tmp_path: Path
) -> None:
    settings = codec_settings(database, tmp_path)
    pipeline = Pipeline(
        settings, device_cache=DeviceCache(refresh_s=0, miss_refresh_s=0), clock=lambda: NOW
    )
    before = pipeline.process(conn, [message(device, bytes.fromhex("0a2b5009c4"), 1)])
    assert before.readings == 0
    assert conn.execute("SELECT decode_status FROM uplink").fetchall() == [("no_decoder",)]

    add_codec(tmp_path, "acme/thermo")
    after = pipeline.process(conn, [message(device, bytes.fromhex("0a2c5009c4"), 2)])
    assert after.readings == 3
