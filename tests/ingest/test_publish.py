"""SensorThings over MQTT: an uplink the ingest stores is published, after its commit, as
an Observation on `v1.1/Datastreams(id)/Observations`; a subscriber with a persistent
session gets it although it was offline when it was published, and the API serves the
same Observation by the id in it."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from datetime import datetime, timedelta

import paho.mqtt.client as paho
import psycopg
from fastapi.testclient import TestClient
from ingest_builders import NOW, generate, register
from paho.mqtt.enums import CallbackAPIVersion
from realservices import BROKER_URL, temporary_database

import decoders
import simulators
from datahub.api.app import create_app
from datahub.config import Settings, SourceSettings, parse_broker_url
from datahub.domain import City, SourceFormat
from datahub.ingest.publish import Publisher
from datahub.ingest.supervisor import Ingest
from datahub.storage.readings import ReadingRow

RUN = uuid.uuid4().hex[:8]
BASE = "http://testserver"


def subscriber(client_id: str, received: queue.Queue[tuple[str, bytes]]) -> paho.Client:
    """A subscriber with a persistent session: clean session off, a fixed client id."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.on_message = lambda c, u, m: received.put((m.topic, m.payload))
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: connected.set()
    endpoint = parse_broker_url(BROKER_URL)
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    assert connected.wait(10)
    return client


def test_a_stored_uplink_is_published_and_fetched_by_its_id() -> None:
    scenario = simulators.load_scenario(simulators.DEFAULT_SCENARIO)
    sim = next(
        s
        for s in generate(scenario, 50)
        if s.source == "ttn-dortmund" and s.device.profile in decoders.CATALOG
    )
    topic_filter = f"v3/sta-{RUN}/devices/+/up"
    source = SourceSettings(
        name="ttn-dortmund",
        city=City.DORTMUND,
        format=SourceFormat.TTN_V3,
        topic=topic_filter,
        client_id=f"sta-ingest-{RUN}",
    )
    with temporary_database("timescaledb", "datahub_test_sta_mqtt") as database:
        settings = database.settings(
            sources=(source,),
            ingest={"metrics_port": 0, "rollup_refresh_s": 0, "max_age_days": 4000},
            api={"public_base_url": BASE},
            fairshare={"anonymous_requests_per_s": 1000},
        )
        with psycopg.connect(database.url) as conn:
            register(conn, scenario)
            conn.execute("UPDATE dataset SET licence_class = 'open'")
        # Subscribe, then go offline: the broker keeps the session and what comes meanwhile.
        received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        client_id = f"sta-subscriber-{RUN}"
        first = subscriber(client_id, received)
        first.subscribe("v1.1/+/Observations", qos=1)
        time.sleep(0.5)  # let the SUBACK arrive before going offline
        first.disconnect()
        first.loop_stop()

        ingest = Ingest(settings)
        runner = threading.Thread(target=ingest.run, daemon=True)
        runner.start()
        try:
            assert ingest.subscriber.wait_connected(10)
            _, body = sim.message(SourceFormat.TTN_V3)
            publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"sta-pub-{RUN}")
            endpoint = parse_broker_url(BROKER_URL)
            publisher.connect(endpoint.host, endpoint.port)
            publisher.loop_start()
            publisher.publish(f"v3/sta-{RUN}/devices/x/up", body, qos=1).wait_for_publish(10)
            publisher.disconnect()
            deadline = time.monotonic() + 20
            assert ingest.publisher is not None
            while ingest.publisher.counts.published == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert ingest.publisher.counts.published > 0
        finally:
            ingest.stop_event.set()
            runner.join(20)

        again = subscriber(client_id, received)  # the same session: no new SUBSCRIBE
        try:
            topic, payload = received.get(timeout=10)
        finally:
            again.disconnect()
            again.loop_stop()
        observation = json.loads(payload)
        datastream = observation["@iot.id"] >> 36
        assert topic == f"v1.1/Datastreams({datastream})/Observations"

        with TestClient(create_app(settings)) as client:
            fetched = client.get(f"/sta/v1.1/Observations({observation['@iot.id']})").json()
            series = client.get(f"/sta/v1.1/Datastreams({datastream})/Thing").json()
        assert fetched == observation
        assert series["properties"]["dev_eui"] == sim.device.dev_eui
        when = datetime.fromisoformat(observation["phenomenonTime"].replace("Z", "+00:00"))
        assert abs(when - sim.time) < timedelta(microseconds=1)


def test_a_full_queue_drops_and_counts_without_blocking() -> None:
    # Never started: nothing drains its queue of two batches.
    publisher = Publisher(Settings(sensorthings={"mqtt_queue": 2}))  # type: ignore[arg-type]
    rows = [ReadingRow(NOW, 1, "temperature", 1.0)]
    for _ in range(3):
        publisher.committed(rows)

    assert publisher.counts.dropped_queue_full == 1
