"""Publishing to a real broker: every counted message arrives; stops on count, duration, Ctrl-C."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr
from realservices import BROKER_URL

from datahub import cli
from datahub.config import Settings, SourceSettings, parse_broker_url
from datahub.domain import City, SourceFormat
from datahub.ingest.envelope import parse_envelope
from simulators.envelopes import topic_for
from simulators.generator import SimUplink, generate
from simulators.publisher import PublishError, Target, publish, simulate, targets_from_settings
from simulators.scenario import Scenario, parse_scenario

START = datetime(2024, 6, 1, tzinfo=UTC)


def _settings(v4_format: SourceFormat = SourceFormat.CHIRPSTACK_V4_PROTOBUF) -> Settings:
    return Settings(
        broker_url=BROKER_URL,
        sources=(
            SourceSettings(name="ttn-dortmund", city=City.DORTMUND, format=SourceFormat.TTN_V3),
            SourceSettings(name="chirpstack-schwerte", city=City.SCHWERTE, format=v4_format),
        ),
    )


@pytest.fixture
def private(scenario_data: dict[str, Any]) -> Scenario:
    """The demo scenario with applications of its own, so other publishers cannot interfere."""
    run = uuid.uuid4().hex[:8]
    for index, fleet in enumerate(scenario_data["fleets"]):
        fleet["application"] = f"t{run}-{index}"
    return parse_scenario(scenario_data)


class Counter:
    """A subscriber to every topic the scenario's devices publish on; counts what arrives."""

    def __init__(self, scenario: Scenario, targets: dict[str, Target]) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        filters = set()
        for device in scenario.devices():
            topic = topic_for(targets[device.source].format, device)
            filters.add(topic.replace(device.device_id, "+").replace(device.dev_eui.lower(), "+"))
        self._filters = sorted(filters)
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-test-{uuid.uuid4()}")
        self.client.on_connect = lambda c, *_: c.subscribe([(f, 1) for f in self._filters])
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        endpoint = parse_broker_url(BROKER_URL)
        self.client.connect(endpoint.host, endpoint.port)
        self.client.loop_start()
        assert self._ready.wait(10), "subscriber did not get its subscription"

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic, bytes(message.payload)))

    def wait_for(self, count: int, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.received) < count:
            time.sleep(0.05)
        time.sleep(0.2)  # let any surplus arrive, so that it is counted too
        return len(self.received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def counter(private: Scenario) -> Iterator[Counter]:
    subscriber = Counter(private, targets_from_settings(_settings()))
    yield subscriber
    subscriber.close()


@pytest.mark.services
@pytest.mark.parametrize("qos", [1, 0])
def test_every_published_uplink_arrives(private: Scenario, counter: Counter, qos: int) -> None:
    targets = targets_from_settings(_settings())
    uplinks = list(generate(private, seed=9, start=START, count=200))
    report = publish(uplinks, targets, qos=qos)
    assert report.published == 200 and not report.interrupted
    assert report.per_source == {
        source: sum(u.source == source for u in uplinks) for source in private.source_names
    }
    assert counter.wait_for(200) == 200
    assert sorted(counter.received) == sorted(u.message(targets[u.source].format) for u in uplinks)


@pytest.mark.services
def test_count_and_rate(private: Scenario, counter: Counter) -> None:
    uplinks = generate(private, seed=9, start=START)  # endless
    report = publish(uplinks, targets_from_settings(_settings()), count=30, rate=500, qos=1)
    assert report.published == 30
    assert counter.wait_for(30) == 30


@pytest.mark.services
def test_duration_stops_an_endless_run(private: Scenario, counter: Counter) -> None:
    uplinks = generate(private, seed=9, realtime=True)
    report = publish(uplinks, targets_from_settings(_settings()), duration=0.5, rate=40, qos=1)
    assert 0 < report.published <= 40
    assert counter.wait_for(report.published) == report.published


@pytest.mark.services
def test_ctrl_c_stops_cleanly_after_sending_what_was_counted(
    private: Scenario, counter: Counter
) -> None:
    def interrupted_after(n: int) -> Iterator[SimUplink]:
        for index, uplink in enumerate(generate(private, seed=9, start=START)):
            if index == n:
                raise KeyboardInterrupt
            yield uplink

    report = publish(interrupted_after(25), targets_from_settings(_settings()), qos=1)
    assert report.interrupted and report.published == 25
    assert counter.wait_for(25) == 25


@pytest.mark.services
def test_json_chirpstack_sources_publish_too(private: Scenario, counter: Counter) -> None:
    targets = targets_from_settings(_settings(SourceFormat.CHIRPSTACK_V4_JSON))
    uplinks = [u for u in generate(private, seed=4, start=START, count=200)][:50]
    assert publish(uplinks, targets, qos=1).published == 50
    assert counter.wait_for(50) == 50


@pytest.mark.services
def test_simulate_publishes_fresh_uplinks_to_the_configured_sources(
    private: Scenario, counter: Counter
) -> None:
    before = datetime.now(UTC)
    report = simulate(private, _settings(), count=40, rate=400, seed=3)
    assert report.published == 40
    assert report.as_json()["per_source"] == report.per_source
    assert counter.wait_for(40) == 40
    ttn = next(json.loads(body) for topic, body in counter.received if topic.startswith("v3/"))
    assert ttn["received_at"] >= before.strftime("%Y-%m-%dT%H:%M:%S")


class SimulateCommand:
    """`datahub simulate` of the private scenario, run in this process; one run at a time."""

    def __init__(self, tmp_path: Path, scenario_data: dict[str, Any], counter: Counter) -> None:
        self.scenario = tmp_path / "scenario.yaml"
        self.scenario.write_text(yaml.safe_dump(scenario_data), encoding="utf-8")
        self.config = tmp_path / "datahub.yaml"
        settings = _settings()
        sources = [
            {"name": s.name, "city": s.city.value, "format": s.format.value}
            for s in settings.sources
        ]
        config = {"broker_url": BROKER_URL, "sources": sources}
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.sources = {s.name: s for s in settings.sources}
        self.counter = counter

    def run(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, set[bytes]]:
        """Publish 20 uplinks; return the seed used, stderr and the uplinks' dedup keys."""
        before = len(self.counter.received)
        config, scenario = str(self.config), str(self.scenario)
        code = cli.main(
            ["--config", config, "simulate", "--scenario", scenario, "--count", "20", *args]
        )
        assert code == 0
        out, err = capsys.readouterr()
        report = json.loads(out)
        assert report["published"] == 20
        assert self.counter.wait_for(before + 20) == before + 20
        return report["seed"], err, {self._key(t, b) for t, b in self.counter.received[before:]}

    def _key(self, topic: str, body: bytes) -> bytes:
        source = self.sources["ttn-dortmund" if topic.startswith("v3/") else "chirpstack-schwerte"]
        uplink = parse_envelope(
            body,
            format=source.format,
            source=source.name,
            city=source.city,
            topic=topic,
            now=datetime.now(UTC),
        )
        return uplink.dedup_key


@pytest.mark.services
def test_each_simulate_run_publishes_new_uplinks_and_says_its_seed(
    tmp_path: Path,
    scenario_data: dict[str, Any],
    counter: Counter,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `counter` made scenario_data private (the `private` fixture) before subscribing.
    command = SimulateCommand(tmp_path, scenario_data, counter)
    first_seed, first_err, first = command.run(capsys)
    second_seed, _, second = command.run(capsys)
    assert first_seed != second_seed
    assert len(first) == len(second) == 20
    assert not first & second  # the hub stores both runs
    assert f"seed {first_seed} (a new one; --seed {first_seed} repeats these values " in first_err


@pytest.mark.services
def test_simulate_with_a_seed_used_before_repeats_it_as_new_uplinks_and_says_so(
    tmp_path: Path,
    scenario_data: dict[str, Any],
    counter: Counter,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `counter` made scenario_data private (the `private` fixture) before subscribing.
    command = SimulateCommand(tmp_path, scenario_data, counter)
    seed, _, first = command.run(capsys)
    again_seed, err, again = command.run(capsys, "--seed", str(seed))
    assert again_seed == seed
    assert len(first) == len(again) == 20
    # The same frame counters at new times: new uplinks, as after a frame-counter reset.
    assert not first & again
    assert "given; used before, it repeats values and frame counters at new times" in err


def test_simulate_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["simulate", "--help"])
    usage = capsys.readouterr().out
    # "  --count N        stop after N uplinks ...": an option, its value, what it does
    explained = dict(re.findall(r"^  (--[a-z]+)(?: \S+)? {2,}(\S.*)$", usage, re.MULTILINE))
    assert sorted(explained) == [
        "--count",
        "--duration",
        "--history",
        "--qos",
        "--rate",
        "--registry",
        "--scenario",
        "--seed",
        "--speed",
    ]
    assert "a seed used before repeats its values and frame counters at" in usage


def test_simulate_needs_every_source_of_the_scenario(demo: Scenario) -> None:
    settings = Settings(sources=_settings().sources[:1])
    with pytest.raises(PublishError, match="chirpstack-schwerte, which the settings do not"):
        simulate(demo, settings, count=1)


def test_uplink_without_a_target_is_refused(demo: Scenario) -> None:
    targets = {"ttn-dortmund": targets_from_settings(_settings())["ttn-dortmund"]}
    schwerte = (u for u in generate(demo, seed=1, start=START) if u.source != "ttn-dortmund")
    with pytest.raises(PublishError, match="no publish target for source 'chirpstack-schwerte'"):
        publish(schwerte, targets, count=1)


def test_unreachable_broker_fails_clearly(demo: Scenario) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    targets = {
        name: Target(format=SourceFormat.TTN_V3, host="127.0.0.1", port=port)
        for name in demo.source_names
    }
    with pytest.raises(PublishError, match=f"127.0.0.1:{port}"):
        publish(generate(demo, seed=1, start=START), targets, count=1)


def test_targets_from_settings_resolve_broker_and_credentials() -> None:
    settings = Settings(
        broker_url="mqtt://broker.local:1883",
        sources=(
            SourceSettings(
                name="ttn-dortmund",
                city=City.DORTMUND,
                format=SourceFormat.TTN_V3,
                broker_url="mqtts://eu1.cloud.thethings.network:8883",
                username="app@ttn",
                password=SecretStr("NNSXS.secret"),
            ),
            SourceSettings(
                name="chirpstack-schwerte",
                city=City.SCHWERTE,
                format=SourceFormat.CHIRPSTACK_V4_JSON,
            ),
        ),
    )
    targets = targets_from_settings(settings)
    ttn, chirpstack = targets["ttn-dortmund"], targets["chirpstack-schwerte"]
    assert (ttn.format, ttn.host, ttn.port, ttn.tls) == (
        SourceFormat.TTN_V3,
        "eu1.cloud.thethings.network",
        8883,
        True,
    )
    assert (ttn.username, ttn.password) == ("app@ttn", "NNSXS.secret")
    assert "secret" not in repr(ttn)
    assert (chirpstack.host, chirpstack.port, chirpstack.tls) == ("broker.local", 1883, False)
    assert chirpstack.broker != ttn.broker


@pytest.mark.parametrize(
    "kwargs", [{"qos": 2}, {"rate": 0}, {"window": 0}], ids=["qos-2", "rate-0", "window-0"]
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        publish([], {}, **kwargs)
