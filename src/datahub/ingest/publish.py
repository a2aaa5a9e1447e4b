"""Publish each new Observation of an open dataset on the hub's broker, as the SensorThings
MQTT extension names it: topic `v1.1/Datastreams(<id>)/Observations`, QoS 1, the
Observation's JSON (datahub/observations.py, as the API renders it).

The ingest calls `Publisher.committed(readings)` after a batch has committed. That call
never blocks and never raises: the readings go onto a bounded queue, and when it is full
they are dropped and counted. A thread of its own resolves what a message needs (which
devices belong to open datasets, metric ids, decoder names) on a connection of its own,
and hands the messages to an MQTT client that reconnects by itself and holds at most
`sensorthings.mqtt_queue` messages while the broker is away.

Publication is at most once: a crash between a batch's commit and its publication loses
those messages, never the Observations, which the REST and SensorThings APIs serve from
the database. Subscribers that must not miss one while they are offline connect with a
fixed client id and a persistent session (clean session off, QoS 1): the broker then keeps
their subscription and queues what is published meanwhile.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from datahub import observations
from datahub.config import Settings, parse_broker_url
from datahub.errors import StorageUnavailable
from datahub.storage import db
from datahub.storage import sensorthings as sta
from datahub.storage.readings import ReadingRow

log = logging.getLogger(__name__)

TOPIC = "v1.1/Datastreams({})/Observations"
# How often the devices of open datasets are read again (a dataset opened, a device moved).
DEVICES_REFRESH_S = 30.0


@dataclass
class PublishCounts:
    """What became of the readings handed over: published, or dropped and why."""

    published: int = 0
    not_open: int = 0  # of a dataset that is not open, or of a personal device: never published
    dropped_queue_full: int = 0
    dropped_broker: int = 0  # the MQTT client's own queue was full or it refused
    failed: int = 0  # the database could not tell what to publish
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)


class Publisher:
    """Publishes Observations after commit; `committed` is its only call on the hot path."""

    def __init__(self, settings: Settings, *, client_id: str | None = None) -> None:
        self._settings = settings
        section = settings.sensorthings
        self._queue: queue.Queue[Sequence[ReadingRow]] = queue.Queue(maxsize=section.mqtt_queue)
        self.counts = PublishCounts()
        api = settings.api
        base = api.public_base_url or f"http://{api.host}:{api.port}"
        self._root = base.rstrip("/") + "/sta/v1.1"
        endpoint = parse_broker_url(settings.broker_url)
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"datahub-sta-{uuid.uuid4().hex[:12]}",
        )
        if endpoint.tls:
            self._client.tls_set()
        self._client.max_queued_messages_set(section.mqtt_queue)
        self._client.reconnect_delay_set(1, 30)
        self._endpoint = endpoint
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sta-publisher", daemon=True)
        self._open: dict[int, int] = {}
        self._open_at = float("-inf")
        self._metric_ids: dict[str, int] = {}
        self._decoders: dict[int, str] = {}
        self._conn = db.KeptConnection(settings, autocommit=True)
        self._warned_at = float("-inf")

    def start(self) -> None:
        self._client.connect_async(self._endpoint.host, self._endpoint.port, keepalive=60)
        self._client.loop_start()
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish what is queued, for at most `timeout` seconds, then disconnect."""
        self._stop.set()
        self._thread.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        self._conn.drop()

    def committed(self, readings: Sequence[ReadingRow]) -> None:
        """Hand over the readings of a committed batch; never blocks, never raises."""
        if not readings:
            return
        try:
            self._queue.put_nowait(readings)
        except queue.Full:
            self.counts.add("dropped_queue_full", len(readings))
            self._warn("the publication queue is full")

    def _run(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            try:
                batch = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._publish(batch)
            except (StorageUnavailable, psycopg.Error) as exc:
                self.counts.add("failed", len(batch))
                log.warning("cannot publish %d observations: %s", len(batch), exc)
                self._conn.drop()
            except Exception:  # a bug must not end publication for good
                self.counts.add("failed", len(batch))
                log.exception("publishing %d observations failed", len(batch))

    def _publish(self, batch: Sequence[ReadingRow]) -> None:
        conn = self._conn.get()
        now = time.monotonic()
        if now - self._open_at > DEVICES_REFRESH_S:
            self._open = sta.select_open_devices(conn)
            self._open_at = now
        rows = [r for r in batch if r.device_id in self._open]
        self.counts.add("not_open", len(batch) - len(rows))
        if not rows:
            return
        if any(r.metric not in self._metric_ids for r in rows):
            sta.ensure_ids(conn, metrics={r.metric for r in rows}, profiles=())
            self._metric_ids = sta.select_metric_ids(conn)
        missing = {r.decoder_id for r in rows if r.decoder_id is not None} - self._decoders.keys()
        if missing:
            # Decoder rows are append-only: a name, once known, never changes.
            self._decoders |= sta.select_decoder_names(conn, ids=sorted(missing))
        for r in rows:
            datastream = observations.datastream_id(r.device_id, self._metric_ids[r.metric])
            body = observations.observation_json(
                self._root,
                datastream=datastream,
                time=r.time,
                value=r.value,
                decoder=self._decoders.get(r.decoder_id) if r.decoder_id is not None else None,
            )
            info = self._client.publish(TOPIC.format(datastream), orjson.dumps(body), qos=1)
            if (
                info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS
                or info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN
            ):
                # Not connected: paho keeps it and sends it once connected (within its queue).
                self.counts.add("published", 1)
            else:
                self.counts.add("dropped_broker", 1)
                self._warn(f"the MQTT client refused an observation ({info.rc.name})")

    def _warn(self, reason: str) -> None:
        """Log drops at most once a minute, with the running totals."""
        now = time.monotonic()
        if now - self._warned_at >= 60.0:
            self._warned_at = now
            log.warning("observations not published: %s; so far %s", reason, self.counts)
