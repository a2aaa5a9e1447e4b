"""deploy/mosquitto-ttn-bridge.conf between a broker standing in for The Things Stack (TLS,
credentials, QoS 0) and the hub's broker: uplinks arrive at the hub at QoS 1, shared among
the workers' persistent sessions, and wait in the bridge while the hub's broker is down."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from replicaset import PROJECT, free_port
from waiting import wait_until

TEMPLATE = PROJECT / "deploy" / "mosquitto-ttn-bridge.conf"
TTN_HOST, HUB_HOST, BRIDGE_HOST = "127.0.0.5", "127.0.0.6", "127.0.0.1"
TOPIC = "v3/dortmund-air@ttn/devices/{}/up"
SHARED = "$share/datahub/v3/+/devices/+/up"
TTN_CLIENT, HUB_CLIENT = "datahub-bridge-dortmund", "ttn-bridge-dortmund"


class Mosquitto:
    """A private Mosquitto on `host`, started from a config text; restartable."""

    def __init__(self, workdir: Path, name: str, host: str, config: str) -> None:
        self.dir = workdir / name
        self.dir.mkdir(mode=0o755)
        (self.dir / "data").mkdir()
        if os.geteuid() == 0:  # the broker drops root for user mosquitto
            shutil.chown(self.dir / "data", "mosquitto", "mosquitto")
        self.host, self.port = host, free_port(host)
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            config.replace("@PORT@", str(self.port)).replace("@DIR@", str(self.dir))
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.dir / "log").open("ab") as log:
            self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stderr=log)
        wait_until(f"{self.dir.name} to listen", self.listening, 15)

    def listening(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, (self.dir / "log").read_text()
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


class Worker:
    """An ingest worker's MQTT side: a persistent session in the shared subscription."""

    def __init__(self, name: str, hub: Mosquitto) -> None:
        self.received: list[tuple[str, int]] = []  # (device, QoS)
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, clean_session=False)
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(SHARED, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self.on_message
        self.client.connect(hub.host, hub.port)
        self.client.loop_start()

    def on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.received.append((json.loads(message.payload)["device"], message.qos))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def tls_files(workdir: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate for TTN_HOST signed by it: (CA, certificate, key)."""
    (workdir / "san.ext").write_text(f"subjectAltName=IP:{TTN_HOST}\n")
    for command in (
        "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=CA -keyout ca.key -out ca.crt",
        f"req -newkey rsa:2048 -nodes -subj /CN={TTN_HOST} -keyout tls.key -out tls.csr",
        "x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1"
        " -extfile san.ext -out tls.crt",
    ):
        subprocess.run(["openssl", *command.split()], cwd=workdir, check=True, capture_output=True)
    files = workdir / "ca.crt", workdir / "tls.crt", workdir / "tls.key"
    for path in files:
        path.chmod(0o644)  # read by user mosquitto
    return files


@pytest.fixture
def brokers() -> Iterator[tuple[Mosquitto, Mosquitto, Mosquitto, Path]]:
    """The Things Stack's stand-in, the hub's broker and the bridge between them."""
    # Not under pytest's tmp tree: the brokers run as user mosquitto, who must reach it.
    workdir = Path(tempfile.mkdtemp(prefix="datahub-bridge-"))
    workdir.chmod(0o755)
    ca, cert, key = tls_files(workdir)
    passwords = workdir / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(passwords), "dortmund-air@ttn", "NNSXS.TESTKEY"],
        check=True,
    )
    passwords.chmod(0o644)
    ttn = Mosquitto(
        workdir,
        "ttn",
        TTN_HOST,
        (
            f"listener @PORT@ {TTN_HOST}\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
            f"allow_anonymous false\npassword_file {passwords}\n"
        ),
    )
    hub = Mosquitto(
        workdir,
        "hub",
        HUB_HOST,
        (
            f"listener @PORT@ {HUB_HOST}\nallow_anonymous true\n"
            "persistence true\npersistence_location @DIR@/data/\n"
            "max_queued_messages 100000\n"
        ),
    )
    bridge_config = TEMPLATE.read_text()
    for name, value in {
        "TTN_ADDRESS": f"{TTN_HOST}:{ttn.port}",
        "TTN_CA_FILE": str(ca),
        "TTN_USERNAME": "dortmund-air@ttn",
        "TTN_API_KEY": "NNSXS.TESTKEY",
        "TTN_CLIENT_ID": TTN_CLIENT,
        "HUB_ADDRESS": f"{HUB_HOST}:{hub.port}",
        "HUB_USERNAME": "ttn-bridge",
        "HUB_PASSWORD": "unused-here",
        "HUB_CLIENT_ID": HUB_CLIENT,
        "LISTEN_PORT": "@PORT@",
        "DATA_DIR": "@DIR@/data",
    }.items():
        bridge_config = bridge_config.replace(f"@{name}@", value)
    assert re.findall(r"@[A-Z_]+@", bridge_config) == ["@PORT@", "@DIR@"]
    bridge = Mosquitto(workdir, "bridge", BRIDGE_HOST, bridge_config)
    try:
        for broker in (ttn, hub, bridge):
            broker.start()
        yield ttn, hub, bridge, ca
    finally:
        for broker in (bridge, hub, ttn):
            broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def publish(ttn: Mosquitto, ca: Path, devices: range) -> None:
    """Publish as The Things Stack does: QoS 0."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="the-things-stack")
    client.tls_set(ca_certs=str(ca))
    client.username_pw_set("dortmund-air@ttn", "NNSXS.TESTKEY")
    client.connect(ttn.host, ttn.port)
    client.loop_start()
    for i in devices:
        client.publish(
            TOPIC.format(f"dev-{i}"), json.dumps({"device": f"dev-{i}"}), qos=0
        ).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def bridge_state(bridge: Mosquitto, client_id: str) -> str:
    """The bridge connection's retained state: "1" connected, "0" not."""
    topic = f"$SYS/broker/connection/{client_id}/state"
    done = subprocess.run(
        ["mosquitto_sub", "-h", bridge.host, "-p", str(bridge.port), "-t", topic, "-C", "1"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return done.stdout.strip()


def wait_for_bridges(bridge: Mosquitto) -> None:
    def connected() -> bool:
        return bridge_state(bridge, TTN_CLIENT) == bridge_state(bridge, HUB_CLIENT) == "1"

    wait_until("both bridge connections", connected, 30)


def delivered(workers: list[Worker], count: int) -> bool:
    return sum(len(w.received) for w in workers) >= count


def test_uplinks_reach_the_shared_subscription_at_qos_1(
    brokers: tuple[Mosquitto, Mosquitto, Mosquitto, Path],
) -> None:
    ttn, hub, bridge, ca = brokers
    wait_for_bridges(bridge)
    workers = [Worker(f"ingest-{i}", hub) for i in (1, 2)]
    try:
        wait_until(
            "the workers to subscribe", lambda: all(w.subscribed.is_set() for w in workers), 10
        )
        publish(ttn, ca, range(200))
        wait_until("200 uplinks at the hub", lambda: delivered(workers, 200), 30)

        got = [r for w in workers for r in w.received]
        assert sorted(d for d, _ in got) == sorted(f"dev-{i}" for i in range(200))
        assert {qos for _, qos in got} == {1}
        assert all(w.received for w in workers), "the shared subscription deals to both"
    finally:
        for w in workers:
            w.close()


def test_uplinks_wait_in_the_bridge_while_the_hub_is_down(
    brokers: tuple[Mosquitto, Mosquitto, Mosquitto, Path],
) -> None:
    ttn, hub, bridge, ca = brokers
    wait_for_bridges(bridge)
    worker = Worker("ingest-1", hub)
    wait_until("the worker to subscribe", worker.subscribed.is_set, 10)
    worker.close()  # its persistent session stays at the hub

    hub.stop()
    wait_until("the bridge to notice", lambda: bridge_state(bridge, HUB_CLIENT) == "0", 30)
    publish(ttn, ca, range(100))
    hub.start()

    worker = Worker("ingest-1", hub)
    try:
        wait_until("100 uplinks after the hub's restart", lambda: delivered([worker], 100), 60)
        assert sorted(d for d, _ in worker.received) == sorted(f"dev-{i}" for i in range(100))
        assert {qos for _, qos in worker.received} == {1}
    finally:
        worker.close()
