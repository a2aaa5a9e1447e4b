"""Publishing simulated uplinks to MQTT brokers, as the network servers would.

One paho client per distinct broker, connected on first use. QoS 1 sends keep at most
`window` messages unacknowledged; QoS 0 sends wait until paho has written them to the socket.
`publish` returns only when every message it counts as published has left (QoS 0) or been
acknowledged by the broker (QoS 1).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time as clock
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from datahub.config import Settings, TlsSettings, parse_broker_url
from datahub.domain import SourceFormat
from datahub.errors import DatahubError
from simulators.generator import SimUplink, generate
from simulators.scenario import Scenario

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 1000
CONNECT_TIMEOUT_S = 10.0
ACK_TIMEOUT_S = 30.0


class PublishError(DatahubError):
    """A broker could not be reached or did not take the messages."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how one source's uplinks are published."""

    format: SourceFormat
    host: str
    port: int
    tls: bool = False
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    tls_settings: TlsSettings | None = None
    mqtt_version: str = "3.1.1"

    @property
    def broker(self) -> tuple[Any, ...]:
        """What identifies one client connection: everything but the format."""
        return (
            self.host,
            self.port,
            self.tls,
            self.username,
            self.password,
            self.tls_settings,
            self.mqtt_version,
        )


@dataclass(frozen=True, slots=True)
class PublishReport:
    published: int
    seconds: float
    per_source: dict[str, int]
    interrupted: bool = False

    @property
    def rate(self) -> float:
        """Messages per second over the whole run."""
        return self.published / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "per_source": dict(self.per_source),
            "interrupted": self.interrupted,
        }


def targets_from_settings(settings: Settings) -> dict[str, Target]:
    """A publish target per configured source: its format, broker and credentials."""
    targets = {}
    for source in settings.sources:
        endpoint = parse_broker_url(settings.broker_for(source))
        targets[source.name] = Target(
            format=source.format,
            host=endpoint.host,
            port=endpoint.port,
            tls=endpoint.tls or source.tls is not None,
            username=source.username,
            password=source.password.get_secret_value() if source.password else None,
            tls_settings=source.tls,
            mqtt_version=getattr(source, "mqtt_version", "3.1.1"),
        )
    return targets


class _Connection:
    """One paho client on its own network thread."""

    def __init__(self, target: Target, *, window: int) -> None:
        self.name = f"{target.host}:{target.port}"
        self._answered = threading.Event()
        self._refused: ReasonCode | None = None
        v5 = target.mqtt_version == "5"
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"datahub-sim-{uuid.uuid4().hex[:12]}",
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        )
        if target.username:
            self.client.username_pw_set(target.username, target.password)
        if target.tls:
            tls = target.tls_settings
            self.client.tls_set(
                ca_certs=str(tls.ca_file) if tls and tls.ca_file else None,
                certfile=str(tls.cert_file) if tls and tls.cert_file else None,
                keyfile=str(tls.key_file) if tls and tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            if tls and tls.insecure_skip_verify:
                self.client.tls_insecure_set(True)
        self.client.max_inflight_messages_set(window)
        # `publish` never has more than `window` messages outstanding; this bound is a backstop.
        self.client.max_queued_messages_set(window + 1)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect = self._on_connect
        try:
            self.client.connect(target.host, target.port, keepalive=30)
        except OSError as exc:
            raise PublishError(f"cannot connect to broker {self.name}: {exc}") from exc
        self.client.loop_start()
        if not self._answered.wait(CONNECT_TIMEOUT_S) or self._refused is not None:
            self.close()
            reason = f"refused: {self._refused}" if self._refused else "no answer"
            raise PublishError(f"broker {self.name} did not accept the connection ({reason})")

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            self._refused = reason
            client.disconnect()  # and do not retry: wrong credentials stay wrong
        self._answered.set()

    def send(self, topic: str, body: bytes, qos: int) -> paho.MQTTMessageInfo:
        info = self.client.publish(topic, body, qos=qos)
        if qos and info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
            # paho keeps a QoS 1 message sent while offline and sends it after reconnecting;
            # clear the code so that waiting for its acknowledgement works.
            info.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise PublishError(f"broker {self.name}: publish failed: {paho.error_string(info.rc)}")
        return info

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait(info: paho.MQTTMessageInfo, name: str) -> None:
    try:
        info.wait_for_publish(ACK_TIMEOUT_S)
    except (RuntimeError, ValueError) as exc:  # paho: the message was not sent or queued
        raise PublishError(f"broker {name}: message not sent: {exc}") from exc
    if not info.is_published():
        raise PublishError(f"broker {name}: no acknowledgement within {ACK_TIMEOUT_S:.0f} s")


def publish(
    uplinks: Iterable[SimUplink],
    targets: Mapping[str, Target],
    *,
    rate: float | None = None,
    count: int | None = None,
    duration: float | None = None,
    qos: int = 1,
    window: int = DEFAULT_WINDOW,
) -> PublishReport:
    """Publish uplinks to their sources' brokers until `uplinks`, `count` or `duration` run out.

    `rate` is in messages per second (None: as fast as the broker takes them); `duration` in
    seconds. Ctrl-C stops cleanly: what was sent is drained and reported (`interrupted`).
    Raises PublishError when an uplink's source has no target or a broker fails.
    """
    if qos not in (0, 1):
        raise ValueError("qos must be 0 or 1")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive")
    if window < 1:
        raise ValueError("window must be at least 1")
    connections: dict[tuple[Any, ...], _Connection] = {}
    pending: deque[tuple[paho.MQTTMessageInfo, str]] = deque()
    per_source: Counter[str] = Counter()
    sent = 0
    interrupted = False
    started = clock.monotonic()
    deadline = None if duration is None else started + duration
    iterator = iter(uplinks)
    try:
        try:
            while count is None or sent < count:
                if rate is not None:
                    # Scheduled sends: message n leaves at start + n / rate, so pauses (a slow
                    # broker, a full window) are made up for without ever bursting ahead.
                    wait = started + sent / rate - clock.monotonic()
                    if deadline is not None and clock.monotonic() + max(wait, 0) >= deadline:
                        break
                    if wait > 0:
                        clock.sleep(wait)
                if deadline is not None and clock.monotonic() >= deadline:
                    break
                uplink = next(iterator, None)
                if uplink is None:
                    break
                target = targets.get(uplink.source)
                if target is None:
                    known = ", ".join(sorted(targets)) or "none"
                    raise PublishError(
                        f"no publish target for source {uplink.source!r} "
                        f"(configured sources: {known})"
                    )
                connection = connections.get(target.broker)
                if connection is None:
                    connection = connections[target.broker] = _Connection(target, window=window)
                topic, body = uplink.message(target.format)
                while len(pending) >= window:
                    _wait(*pending.popleft())
                pending.append((connection.send(topic, body, qos), connection.name))
                per_source[uplink.source] += 1
                sent += 1
        except KeyboardInterrupt:
            interrupted = True
        # Everything counted must really have left before we report it.
        while pending:
            _wait(*pending.popleft())
    finally:
        for connection in connections.values():
            connection.close()
    seconds = clock.monotonic() - started
    report = PublishReport(
        published=sent,
        seconds=seconds,
        per_source=dict(per_source),
        interrupted=interrupted,
    )
    log.info(
        "published %d uplinks in %.1f s (%.0f/s)%s",
        report.published,
        report.seconds,
        report.rate,
        " (interrupted)" if interrupted else "",
    )
    return report


def simulate(
    scenario: Scenario,
    settings: Settings,
    *,
    count: int | None = None,
    rate: float | None = None,
    duration: float | None = None,
    seed: int | str = 1,
    qos: int = 1,
    history: timedelta | None = None,
    speed: float | None = None,
) -> PublishReport:
    """Publish the scenario's uplinks, dated now, to the sources configured in `settings`.

    Devices take turns as their intervals say; `rate` (uplinks per second, None: as fast as
    the broker takes them) or `speed` (the devices' own intervals, sped up this many times)
    sets the pace. `history` first sends that much past of every device, as fast as the
    broker takes it. Runs until `count` uplinks or `duration` seconds, or Ctrl-C. Raises
    PublishError when a fleet's source is not configured.
    """
    targets = targets_from_settings(settings)
    if missing := sorted(scenario.source_names - set(targets)):
        configured = ", ".join(sorted(targets)) or "none"
        raise PublishError(
            f"the scenario publishes to {', '.join(missing)}, which the settings do not "
            f"configure as sources (configured: {configured})"
        )
    start = datetime.now(UTC) - history if history else None
    uplinks = generate(scenario, seed=seed, realtime=True, start=start, speed=speed)
    return publish(uplinks, targets, rate=rate, count=count, duration=duration, qos=qos)
