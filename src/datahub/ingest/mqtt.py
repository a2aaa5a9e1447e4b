"""MQTT subscription to every configured source; knows nothing of LoRaWAN.

One paho client per source, each on its own network thread, feeding one bounded queue.
QoS 1 sources use a persistent session (fixed client id, clean_session off) and manual
acknowledgement: a message is acknowledged only when `ack` is called after its batch has
committed, so a crash before that makes the broker deliver it again.

A message is acknowledged only on the connection it arrived on. After a reconnect the broker
resends every unacknowledged message of the session, often under the same packet id; acking
the old copy on the new connection would acknowledge that id twice, and the second PUBACK
could release a different, newer message that reused the id before it was stored.

When a source subscribes again after losing its connection, `on_resubscribed` is called (on
the network thread: it must return at once) with the start of the gap: the arrival of the
source's last message, or, if that is older, the disconnect time less the keepalive window
within which a dead connection goes unnoticed.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from datahub.config import Settings, SourceSettings, parse_broker_url

log = logging.getLogger(__name__)

KEEPALIVE_S = 60
# What one system call reads from the broker: a few hundred uplinks' PUBLISH packets.
READ_AHEAD_BYTES = 65_536
# Packets handled per wake-up of a network thread, at most, before it looks at its timers.
DRAIN_PACKETS = 1_000
# paho notices a silent connection after 1.5 keepalive intervals without an answer.
UNNOTICED = timedelta(seconds=KEEPALIVE_S * 2)


@dataclass(slots=True)  # not frozen: one per message, built on the network thread
class Message:
    """One MQTT message as received, with what is needed to acknowledge it."""

    source: str
    topic: str
    body: bytes
    qos: int
    mid: int
    arrived_at: datetime
    client: paho.Client | None = field(default=None, repr=False, compare=False)
    connection: int = 0  # which connection of `client` delivered it


class Subscriber:
    """Keeps one connection per source and puts every message on `inbox`."""

    def __init__(
        self,
        settings: Settings,
        *,
        inbox: queue.SimpleQueue[Message],
        on_resubscribed: Callable[[str, datetime], None] | None = None,
    ) -> None:
        self._settings = settings
        self._inbox = inbox
        self._limit = settings.ingest.queue_limit
        self._on_resubscribed = on_resubscribed
        self._stopping = threading.Event()
        self._connected: dict[str, threading.Event] = {}
        # Per source: the number of the current connection, and whether it is up.
        self._connection: dict[str, int] = {}
        self._online: dict[str, bool] = {}
        # Per source: when its last message arrived, and when its connection was lost.
        self._last_arrival: dict[str, datetime] = {}
        self._disconnected_at: dict[str, datetime] = {}
        self._clients = [self._client(source) for source in settings.sources]

    def _client(self, source: SourceSettings) -> paho.Client:
        endpoint = parse_broker_url(self._settings.broker_for(source))
        persistent = source.qos > 0
        v5 = source.mqtt_version == "5"
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._settings.client_id_for(source),
            clean_session=None if v5 else not persistent,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            manual_ack=True,
            userdata=source,
        )
        if source.username:
            password = source.password.get_secret_value() if source.password else None
            client.username_pw_set(source.username, password)
        if endpoint.tls or source.tls is not None:
            tls = source.tls
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls and tls.ca_file else None,
                certfile=str(tls.cert_file) if tls and tls.cert_file else None,
                keyfile=str(tls.key_file) if tls and tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            if tls and tls.insecure_skip_verify:
                client.tls_insecure_set(True)
        # The window of unacknowledged QoS 1 messages towards us is the broker's: for MQTT 5
        # our Receive Maximum (below), for MQTT 3.1.1 its max_inflight_messages (Mosquitto's
        # default of 20 caps a batch at 20 messages: docs/operations.md). paho's own
        # max_inflight_messages only limits what we publish, which is nothing.
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._connected[source.name] = threading.Event()
        self._connection[source.name] = 0
        self._online[source.name] = False
        client.connect_async(
            endpoint.host,
            endpoint.port,
            keepalive=KEEPALIVE_S,
            clean_start=not persistent if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=_session_properties(persistent, self._receive_maximum()) if v5 else None,
        )
        return client

    def start(self) -> None:
        """Connect every source in the background; reconnects happen by themselves."""
        for client in self._clients:
            client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        """Wait until every source has connected and subscribed once."""
        return all(event.wait(timeout) for event in self._connected.values())

    def online(self) -> dict[str, bool]:
        """Whether each source is connected and subscribed right now."""
        return dict(self._online)

    def _receive_maximum(self) -> int:
        # MQTT 5 lets us cap the broker's window of unacknowledged messages towards us; keep the
        # windows of all sources within the queue, so that a full queue stays rare. (Mosquitto
        # 2.0.11 overshoots it: each acknowledgement may release up to a whole window more, so
        # a backlog can fill the queue; the queue then holds the network thread, which is safe:
        # the ingest thread drains the queue without waiting for the network threads.)
        share = self._settings.ingest.queue_limit // max(len(self._settings.sources), 1)
        return max(1, min(share, 65_535))

    def stop(self) -> None:
        """Disconnect every source; unacknowledged QoS 1 messages stay with the broker."""
        self._stopping.set()
        for client in self._clients:
            client.disconnect()
        for client in self._clients:
            client.loop_stop()

    def ack(self, messages: Iterable[Message]) -> Counter[str]:
        """Acknowledge committed messages, in the order received; count them per source.

        A message of an earlier connection is skipped: the broker has resent it since, and the
        copy it resent is acknowledged when its own batch commits.
        """
        acked: Counter[str] = Counter()
        for message in messages:
            if message.qos > 0 and message.client is not None:
                if message.connection != self._connection.get(message.source):
                    continue
                message.client.ack(message.mid, message.qos)
                acked[message.source] += 1
        return acked

    def _on_connect(
        self,
        client: paho.Client,
        source: SourceSettings,
        flags: Any,
        reason: ReasonCode,
        props: Any,
    ) -> None:
        if reason.is_failure:
            log.warning("source %s: connect refused: %s", source.name, reason)
            return
        self._connection[source.name] += 1
        log.info("source %s: connected, subscribing to %s", source.name, source.topic_filter)
        client.subscribe(source.topic_filter, qos=source.qos)

    def _on_subscribe(
        self,
        client: paho.Client,
        source: SourceSettings,
        mid: int,
        reasons: Sequence[ReasonCode],
        props: Any,
    ) -> None:
        if any(r.is_failure for r in reasons):
            log.error("source %s: subscription to %s refused", source.name, source.topic_filter)
            return
        self._online[source.name] = True
        lost = self._disconnected_at.pop(source.name, None)
        if self._connected[source.name].is_set() and lost is not None:
            last = self._last_arrival.get(source.name)
            gap_start = max(last, lost - UNNOTICED) if last else lost - UNNOTICED
            if self._on_resubscribed is not None:
                self._on_resubscribed(source.name, gap_start)
        self._connected[source.name].set()

    def _on_disconnect(
        self,
        client: paho.Client,
        source: SourceSettings,
        flags: Any,
        reason: ReasonCode,
        props: Any,
    ) -> None:
        # Messages of the lost connection must not be acknowledged on the next one.
        self._connection[source.name] += 1
        self._online[source.name] = False
        self._disconnected_at.setdefault(source.name, datetime.now(UTC))
        if not self._stopping.is_set():
            log.warning("source %s: disconnected (%s), reconnecting", source.name, reason)

    def _on_message(
        self, client: paho.Client, source: SourceSettings, msg: paho.MQTTMessage
    ) -> None:
        message = Message(
            source=source.name,
            topic=msg.topic,
            body=bytes(msg.payload),
            qos=msg.qos,
            mid=msg.mid,
            arrived_at=datetime.now(UTC),
            client=client,
            connection=self._connection[source.name],
        )
        self._last_arrival[source.name] = message.arrived_at
        # A full queue holds this network thread: the broker then stops sending to us, which
        # is the backpressure we want while the database is slow or down. The inbox is a
        # SimpleQueue, its put and get C calls; a bounded queue.Queue took a lock and a
        # condition in Python per message, ~5 µs of it. So the bound is kept here: each
        # source's thread waits while the inbox is full (they may overshoot it by one
        # message each, no more).
        while self._inbox.qsize() >= self._limit:
            if self._stopping.wait(0.005):
                return
        self._inbox.put(message)


class ReadAhead:
    """A connection's socket that reads whatever the broker has sent in one system call.

    paho reads each packet's type and length one byte at a time, a `recv` call each, then its
    body: three or four system calls per PUBLISH, each giving up the GIL to the ingest
    thread and waiting to get it back. Through this socket those reads come from memory.
    `pending` (which paho asks of TLS sockets) counts the bytes held here, so paho reads
    them without waiting for the socket to be readable again.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._start = 0

    def recv(self, bufsize: int) -> bytes:
        start = self._start
        if start == len(self._buffer):
            data: bytes = self._sock.recv(max(bufsize, READ_AHEAD_BYTES))
            if len(data) <= bufsize:
                return data
            self._buffer, start = data, 0
        self._start = min(start + bufsize, len(self._buffer))
        return self._buffer[start : self._start]

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buffer) - self._start + inner

    def send(self, buffer: bytes | bytearray) -> int:
        sent: int = self._sock.send(buffer)
        return sent

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        fd: int = self._sock.fileno()
        return fd

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Client(paho.Client):
    """paho's client, reading through `ReadAhead` and handling every packet it has read.

    paho 2.x reads one packet per wake-up of its network thread (`loop_read` ignores its
    `max_packets`), so each message cost a `select` call, another GIL hand-over. Here a
    wake-up goes on while read-ahead bytes remain, up to DRAIN_PACKETS. Relies on paho's
    `_create_socket` (2.0 to 2.2); tests/ingest/test_mqtt_read_ahead.py checks both.
    """

    def _create_socket(self) -> Any:
        return ReadAhead(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        for _ in range(DRAIN_PACKETS - 1):
            sock = self.socket()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or not isinstance(sock, ReadAhead):
                break
            if not sock.pending():
                break
            rc = super().loop_read(max_packets)
        return rc


def _session_properties(persistent: bool, receive_maximum: int) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = receive_maximum
    if persistent:
        props.SessionExpiryInterval = 7 * 24 * 3600  # keep queued uplinks for a week
    return props
