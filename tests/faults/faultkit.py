"""Private services that fault tests may kill: a Mosquitto broker, a PostgreSQL 15 cluster,
and `datahub ingest` subprocesses. The shared services of the other tests are never touched.

Every wait here is bounded: a fault test ends by itself, failing with what it saw.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import yaml
from democatalog import CODEC_TIMEOUT_MS, DEPLOY_CODECS, demo_catalog
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_text import parse_samples
from waiting import wait_until

import simulators
from datahub.config import Settings
from datahub.domain import SourceFormat
from datahub.ingest import decode, normalize
from datahub.storage import migrate
from simulators.envelopes import stable_uuid
from simulators.scenario import parse_scenario

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SOURCES = {
    "ttn-dortmund": SourceFormat.TTN_V3,
    "chirpstack-schwerte": SourceFormat.CHIRPSTACK_V4_JSON,
}
VERSIONS = {"ttn-dortmund": "3.1.1", "chirpstack-schwerte": "5"}

Reading = tuple[str, datetime, str, float]  # dev_eui, time, metric, value


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _owned_tmpdir(prefix: str, user: str) -> Path:
    """A directory in /tmp that `user` owns (the pytest tmp tree is not reachable by others)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


class Broker:
    """A private Mosquitto with persistence, configured like deploy/mosquitto.conf."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = _owned_tmpdir("datahub-mq-", "mosquitto")
        (self.dir / "data").mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.dir / "data", "mosquitto", "mosquitto")
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            + ("user mosquitto\n" if os.geteuid() == 0 else "")
            + f"persistence true\npersistence_location {self.dir}/data/\n"
            "autosave_interval 300\n"
            "max_inflight_messages 1000\nmax_inflight_bytes 0\nset_tcp_nodelay true\n"
            "max_queued_messages 1000000\nmax_queued_bytes 0\n"
            f"log_dest file {self.dir}/mosquitto.log\nlog_type all\n"
            "connection_messages true\nlog_timestamp true\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until("the private broker to listen", lambda: port_open(self.port), 15)

    def stop(self) -> None:
        """Stop gracefully: Mosquitto writes its persistence file on SIGTERM."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.proc = None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Postgres:
    """A private PostgreSQL 15 cluster in /tmp, run as the `postgres` OS user when root."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = _owned_tmpdir("datahub-pg-", "postgres")
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "datahub",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        )

    @property
    def url(self) -> str:
        return f"postgresql://datahub@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*prefix, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", "30", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def scenario(run: str) -> simulators.Scenario:
    """The demo scenario, publishing under applications of this run only."""
    data = yaml.safe_load(simulators.DEFAULT_SCENARIO.read_text())
    for fleet in data["fleets"]:
        fleet["application"] = f"fault-{fleet['city']}-{run}"
    return parse_scenario(data)


def generate(run: str, count: int, seed: int = 7) -> list[simulators.SimUplink]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=14)
    sims = list(simulators.generate(scenario(run), seed=seed, start=start, count=count))
    assert sims[-1].time < datetime.now(UTC), "the uplinks must lie in the past"
    return sims


@dataclass
class Ingest:
    """`datahub ingest` as a subprocess on private sources; restartable with the same ids.

    Workers of a `share_group` subscribe to the sources' topics shared, under client ids
    of their own by `{worker}`: each is named by DATAHUB_INGEST__WORKER, so their config
    files are the same. Each serves its metrics on `host`, a loopback address of its own.
    """

    broker_url: str
    database_url: str
    workdir: Path
    host: str = "127.0.0.1"
    worker: str | None = None
    share_group: str | None = None  # workers of one group share the sources
    ingest: dict[str, Any] = field(default_factory=dict)
    database: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # settings per source name
    more: dict[str, Any] = field(default_factory=dict)  # further top-level settings
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        self.metrics_port = free_port(self.host)
        scn = scenario(self.run)
        ttn = scn.source("ttn-dortmund").tenant
        cs_app = stable_uuid(
            "application", scn.source("chirpstack-schwerte").tenant, f"fault-schwerte-{self.run}"
        )
        shared = f"$share/{self.share_group}/" if self.share_group else ""
        named = "-{worker}" if self.share_group else ""
        config = {
            "broker_url": self.broker_url,
            "log_format": "text",
            "ingest": {
                "batch_size": 500,
                "batch_wait_ms": 50,
                **({} if self.worker else self._endpoint()),
                **self.ingest,
            },
            "database": self.database,
            # The demo scenario has a JavaScript-codec fleet: decode it as `make demo` does.
            "catalog": {"codecs_dir": str(DEPLOY_CODECS), "codec_timeout_ms": CODEC_TIMEOUT_MS},
            "sources": [
                {
                    "name": "ttn-dortmund",
                    "city": "dortmund",
                    "format": "ttn-v3",
                    "topic": f"{shared}v3/fault-dortmund-{self.run}@{ttn}/devices/+/up",
                    "qos": 1,
                    "client_id": f"fault-ttn-{self.run}{named}",
                    **self.sources.get("ttn-dortmund", {}),
                },
                {
                    "name": "chirpstack-schwerte",
                    "city": "schwerte",
                    "format": "chirpstack-v4-json",
                    "topic": f"{shared}application/{cs_app}/device/+/event/up",
                    "qos": 1,
                    "mqtt_version": "5",
                    "client_id": f"fault-cs-{self.run}{named}",
                    **self.sources.get("chirpstack-schwerte", {}),
                },
            ],
            **self.more,
        }
        self.config = self.workdir / "datahub.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.env = {
            **os.environ,
            "DATAHUB_DATABASE_URL": self.database_url,
            "PYTHONFAULTHANDLER": "1",  # a stuck process shows its stacks (terminate)
        }
        self.env.pop("DATAHUB_CONFIG", None)
        if self.worker is not None:
            self.env["DATAHUB_INGEST__WORKER"] = self.worker
            self.env.update(
                {f"DATAHUB_INGEST__{k.upper()}": str(v) for k, v in self._endpoint().items()}
            )

    def _endpoint(self) -> dict[str, Any]:
        return {"metrics_host": self.host, "metrics_port": self.metrics_port}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "datahub.cli", "--config", str(self.config), *args]

    def import_registry(self) -> None:
        registry = self.workdir / "devices.csv"
        simulators.write_registry_csv(scenario(self.run), registry)
        subprocess.run(
            self.command("devices", "import", str(registry)),
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    @property
    def log_path(self) -> Path:
        return self.workdir / "ingest.log"

    def start(self, timeout: float = 60) -> None:
        """Start and wait until every source is subscribed and the database answers."""
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            self.proc = subprocess.Popen(
                self.command("ingest"), env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until("the ingest to be ready", lambda: self.ready() == 200, timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, and the exit status; a process still running after `timeout` is made to
        write every thread's stack to its log (faulthandler, on SIGABRT) before the test
        fails."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(timeout=10)
            raise

    def close(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=10)

    def get(self, path: str) -> tuple[int, bytes]:
        url = f"http://{self.host}:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())
        except OSError:
            return 0, b""

    def ready(self) -> int:
        assert self.alive(), f"the ingest exited; see {self.log_path}"
        return self.get("/health/ready")[0]

    def metrics(self) -> dict[str, float]:
        """The scraped samples, by `name{labels}` as written in the text format."""
        status, body = self.get("/metrics")
        assert status == 200, status
        return parse_samples(body.decode())

    def holds_nothing(self) -> bool:
        """Tell whether every message received has its outcome committed and acknowledged."""
        return self.metrics()["datahub_ingest_backlog_messages"] == 0

    def rss_kib(self) -> int:
        """Resident memory of the ingest process, from /proc."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc status")


def targets(broker_port: int) -> dict[str, simulators.Target]:
    return {
        name: simulators.Target(fmt, "127.0.0.1", broker_port, mqtt_version=VERSIONS[name])
        for name, fmt in SOURCES.items()
    }


class Publisher(threading.Thread):
    """Publishes at QoS 1 in the background, waiting for the broker's acknowledgements."""

    def __init__(
        self, sims: list[simulators.SimUplink], broker_port: int, rate: float | None = None
    ) -> None:
        super().__init__(name="fault-publisher", daemon=True)
        self.sims, self.port, self.rate = sims, broker_port, rate
        self.published = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            report = simulators.publish(self.sims, targets(self.port), qos=1, rate=self.rate)
            self.published = report.published
        except BaseException as exc:
            self.error = exc

    def finish(self, timeout: float) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the publisher did not finish"
        assert self.error is None, f"publishing failed: {self.error!r}"
        assert self.published == len(self.sims)


def publish_raw(broker_port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish (topic, body) pairs as they are, at QoS 1; return once the broker has them."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fault-raw-{uuid.uuid4().hex}")
    client.connect("127.0.0.1", broker_port)
    client.loop_start()
    try:
        sent = [client.publish(topic, body, qos=1) for topic, body in messages]
        for info in sent:
            info.wait_for_publish(timeout=30)
            assert info.is_published(), "the broker did not acknowledge a message"
    finally:
        client.disconnect()
        client.loop_stop()


def migrated(url: str) -> str:
    migrate.upgrade(Settings(database_url=url))
    return url


def counts(database_url: str) -> tuple[int, int]:
    """(uplinks, distinct dedup keys) stored."""
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT dedup_key) FROM uplink").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def stored(database_url: str) -> int:
    return counts(database_url)[0]


def expected_readings(sims: list[simulators.SimUplink]) -> set[Reading]:
    """The readings the payloads encode, through the decoders and normalization."""
    out: set[Reading] = set()
    for sim in sims:
        profile = demo_catalog()[sim.device.profile]
        data = decode.decode_uplink(profile, f_port=sim.f_port, payload=sim.payload).data
        norm = normalize.to_readings(
            data, profile.mappings, time=sim.time, dev_eui=sim.device.dev_eui
        )
        out.update((sim.device.dev_eui, r.time, r.metric, r.value) for r in norm.readings)
    return out


def stored_readings(database_url: str) -> list[Reading]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT d.dev_eui, r.time, r.metric, r.value"
            " FROM reading r JOIN device d ON d.id = r.device_id"
        ).fetchall()
    return [(str(e), t, str(m), float(v)) for e, t, m, v in rows]


def assert_exactly(database_url: str, sims: list[simulators.SimUplink]) -> None:
    """Every uplink stored once and every reading the payloads encode, nothing else."""
    total_rows, distinct = counts(database_url)
    assert (total_rows, distinct) == (len(sims), len(sims))
    readings = stored_readings(database_url)
    expected = expected_readings(sims)
    assert len(readings) == len(set(readings))
    assert set(readings) == expected, (
        f"{len(expected - set(readings))} readings missing, "
        f"{len(set(readings) - expected)} unexpected"
    )


def drain(database_url: str, ingest: Ingest, expected: int, timeout: float) -> None:
    """Wait until `expected` uplinks are stored and the ingest holds no message it has not
    committed and acknowledged (a redelivery in flight would be counted there)."""
    wait_until(
        f"{expected} uplinks to be stored",
        lambda: ingest.alive() and stored(database_url) >= expected,
        timeout,
    )
    wait_until("the ingest to hold nothing uncommitted", ingest.holds_nothing, timeout)


def log_tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join(text[-lines:])


def json_lines(path: Path) -> Iterator[dict[str, Any]]:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            yield json.loads(line)
