"""Ceilings, measured on the run's own messages: what the broker and the database take
without datahub in between, and what a naive integration does.

- broker: C publishers (`mosquitto_pub -l`, one per 50,000 messages of a source) to a C
  subscriber that only counts (`mosquitto_sub`), QoS 0;
- database: binary COPY of the messages' reading rows into `reading`, 20,000 rows per
  transaction;
- naive: one INSERT (raw uplink and decoded JSON) and one commit per uplink, as
  ChirpStack's PostgreSQL integration writes its `event_up` rows.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg

from datahub.bench.services import BenchError
from datahub.config import BrokerEndpoint
from datahub.ingest.store import Prepared
from datahub.storage import bench
from datahub.storage.readings import ReadingRow, copy_readings

COPY_ROWS_PER_TRANSACTION = 20_000
PROBE = b"probe"
# `mosquitto_pub -l` (2.0.11) disconnects when the PUBACK of its last line's packet id
# arrives. Packet ids are 16 bits: past 65,535 lines they repeat, and the acknowledgement
# of an earlier line with the last line's id ends the publisher early, exit status 0, with
# the rest of its lines never sent (a QoS 1 run of 74,929 lines sent ~10,000). So no
# publisher is given more lines than there are packet ids.
LINES_PER_PUBLISHER = 50_000


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def mosquitto_pub(broker: BrokerEndpoint, topic: str, *, qos: int, client_id: str) -> list[str]:
    """The command line of a C publisher sending one message per line of its stdin."""
    return [
        "mosquitto_pub",
        "-h",
        broker.host,
        "-p",
        str(broker.port),
        "-t",
        topic,
        "-q",
        str(qos),
        "-l",
        "-i",
        client_id,
        "-M",
        "1000",  # QoS 1: the broker's window, not 20 round trips at a time
        "--nodelay",
    ]


def end_sessions(broker: BrokerEndpoint, client_ids: Sequence[str]) -> None:
    """Discard the broker's persistent sessions of these client ids.

    The QoS 1 workers' sessions outlive them (their expiry is days) and would keep queueing
    whatever later runs publish to their shared subscriptions. Connecting once more with
    each id, a clean start and no session expiry ends them.
    """
    ends = [
        subprocess.Popen(
            [
                "mosquitto_sub",
                "-h",
                broker.host,
                "-p",
                str(broker.port),
                "-V",
                "5",
                "-i",
                cid,
                "-t",
                "datahub/bench/end-session",
                "-E",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for cid in client_ids
    ]
    for end in ends:
        try:
            end.wait(timeout=10)
        except subprocess.TimeoutExpired:
            end.kill()


def publish_lines(
    broker: BrokerEndpoint,
    sets: Mapping[str, tuple[str, Sequence[bytes]]],
    *,
    qos: int,
    run: str,
    topic_for: Mapping[str, str] | None = None,
) -> list[subprocess.Popen[bytes]]:
    """Start C publishers, one per LINES_PER_PUBLISHER messages of a source, each fed its
    messages on stdin; return the processes."""
    publishers = []
    for source, (topic, bodies) in sets.items():
        for part, first in enumerate(range(0, len(bodies), LINES_PER_PUBLISHER)):
            client_id = f"{run}-{source}" + (f"-{part}" if part else "")
            proc = subprocess.Popen(
                mosquitto_pub(
                    broker, (topic_for or {}).get(source, topic), qos=qos, client_id=client_id
                ),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            publishers.append(proc)
            chunk = bodies[first : first + LINES_PER_PUBLISHER]
            threading.Thread(target=_feed, args=(proc, chunk), daemon=True).start()
    return publishers


def _feed(proc: subprocess.Popen[bytes], bodies: Sequence[bytes]) -> None:
    assert proc.stdin is not None
    # A publisher that exits early closes the pipe; its exit status and the count of what
    # arrived tell that, so the broken pipe itself is no error here.
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(b"\n".join(bodies) + b"\n")
        proc.stdin.close()


def wait_publishers(publishers: Sequence[subprocess.Popen[bytes]], timeout: float) -> None:
    for proc in publishers:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise BenchError("mosquitto_pub did not finish") from None
        err = proc.stderr.read() if proc.stderr else b""
        if proc.returncode != 0:
            raise BenchError(f"mosquitto_pub failed: {err.decode(errors='replace')}")


def broker_ceiling(
    broker: BrokerEndpoint,
    sets: Mapping[str, tuple[str, Sequence[bytes]]],
    *,
    run: str,
    timeout: float = 120.0,
) -> Rate:
    """Messages per second from C publishers through the broker to a counting C subscriber."""
    prefix = f"bench/{run}/ceiling"
    expected = sum(len(bodies) for _, bodies in sets.values())
    sub = subprocess.Popen(
        [
            "mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-q", "0",
            "-t", f"{prefix}/data/#", "-t", f"{prefix}/probe", "-F", "%t",
        ],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    counter = _LineCounter(sub, data=f"{prefix}/data/".encode())
    try:
        # The subscription is in place once a probe comes back.
        deadline = time.monotonic() + 10
        while not counter.probed.is_set():
            if time.monotonic() > deadline:
                raise BenchError("mosquitto_sub did not subscribe within 10 s")
            subprocess.run(
                ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port),
                 "-t", f"{prefix}/probe", "-m", "probe"],
                check=True,
            )  # fmt: skip
            counter.probed.wait(0.2)
        started = time.monotonic()
        topics = {source: f"{prefix}/data/{source}" for source in sets}
        publishers = publish_lines(broker, sets, qos=0, run=f"{run}-ceiling", topic_for=topics)
        if not counter.reached(expected, timeout):
            raise BenchError(
                f"the counting subscriber got {counter.data} of {expected} messages: "
                "the broker dropped QoS 0 messages"
            )
        seconds = counter.reached_at - started
        wait_publishers(publishers, timeout)
    finally:
        sub.kill()
        sub.wait()
    return Rate(expected, seconds)


class _LineCounter:
    """Counts a subscriber's output lines on a thread: data lines, and whether a probe came."""

    def __init__(self, proc: subprocess.Popen[bytes], *, data: bytes) -> None:
        self.data = 0
        self.reached_at = 0.0
        self.probed = threading.Event()
        self._data = data
        self._target: int | None = None
        self._done = threading.Event()
        self._proc = proc
        threading.Thread(target=self._read, daemon=True).start()

    def reached(self, target: int, timeout: float) -> bool:
        self._target = target
        if self.data >= target:
            self._done.set()
        return self._done.wait(timeout)

    def _read(self) -> None:
        stream = self._proc.stdout
        assert isinstance(stream, io.BufferedReader)
        tail = b""
        while chunk := stream.read1(1 << 16):
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            self.data += sum(1 for line in lines if line.startswith(self._data))
            if not self.probed.is_set() and any(line.endswith(PROBE) for line in lines):
                self.probed.set()
            if self._target is not None and self.data >= self._target and not self._done.is_set():
                self.reached_at = time.monotonic()
                self._done.set()


def db_copy_ceiling(conn: psycopg.Connection, rows: Sequence[ReadingRow]) -> Rate:
    """Reading rows per second by binary COPY, then remove them again."""
    started = time.monotonic()
    for first in range(0, len(rows), COPY_ROWS_PER_TRANSACTION):
        chunk = rows[first : first + COPY_ROWS_PER_TRANSACTION]
        with conn.transaction():
            copy_readings(
                conn, rows=((r.time, r.device_id, r.metric, r.value, r.decoder_id) for r in chunk)
            )
    seconds = time.monotonic() - started
    with conn.transaction():
        bench.truncate_readings(conn)
    return Rate(len(rows), seconds)


def naive(conn: psycopg.Connection, uplinks: Sequence[Prepared]) -> Rate:
    """Uplinks per second with one INSERT and one commit each (autocommit connection)."""
    with conn.transaction():
        bench.create_naive_table(conn)
    started = time.monotonic()
    for item in uplinks:
        up = item.row.uplink
        decoded = {r.metric: r.value for r in item.readings}
        with conn.transaction():
            bench.insert_naive_uplink(
                conn,
                dedup_key=up.dedup_key,
                time=up.received_at,
                dev_eui=up.dev_eui,
                f_cnt=up.f_cnt,
                f_port=up.f_port,
                data=up.payload,
                object=json.dumps(decoded),
                rx_info=json.dumps(up.radio.as_json()),
            )
    return Rate(len(uplinks), time.monotonic() - started)
