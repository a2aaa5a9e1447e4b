"""The subscriber reads ahead of paho: whatever the socket holds in one call, served from
memory, packets split across reads and larger than a read intact, and every message of a
real Mosquitto delivered once, in order, byte for byte."""

from __future__ import annotations

import queue
import socket
import threading
import uuid

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from realservices import BROKER_URL

from datahub.config import Settings, SourceSettings, parse_broker_url
from datahub.domain import City, SourceFormat
from datahub.ingest.mqtt import READ_AHEAD_BYTES, Message, ReadAhead, Subscriber


class CountingSocket:
    """A socket that counts its recv calls."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.calls = sock, 0

    def recv(self, bufsize: int) -> bytes:
        self.calls += 1
        return self.sock.recv(bufsize)

    def fileno(self) -> int:
        return self.sock.fileno()


def test_small_reads_come_from_one_system_call() -> None:
    ours, theirs = socket.socketpair()
    counting = CountingSocket(ours)
    sock = ReadAhead(counting)
    theirs.sendall(b"\x30\x05hello\x30\x03abc")

    got = [sock.recv(1), sock.recv(1), sock.recv(5), sock.recv(1), sock.recv(1)]
    assert got == [b"\x30", b"\x05", b"hello", b"\x30", b"\x03"]
    assert sock.pending() == 3
    assert sock.recv(10) == b"abc"  # a short read, as recv may return
    assert sock.pending() == 0
    assert counting.calls == 1
    assert sock.fileno() == ours.fileno()


def test_a_packet_split_across_reads_and_the_end_of_the_stream() -> None:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    sock = ReadAhead(ours)
    theirs.sendall(b"\x30\x0a01234")
    assert sock.recv(1) == b"\x30"
    assert sock.recv(1) == b"\x0a"
    assert sock.recv(10) == b"01234"
    try:
        sock.recv(5)
        raise AssertionError("an empty non-blocking socket must raise")
    except BlockingIOError:
        pass
    theirs.sendall(b"56789")
    assert sock.recv(5) == b"56789"
    theirs.close()
    assert sock.recv(1) == b""  # the broker closed the connection


def test_a_body_larger_than_one_read_arrives_whole() -> None:
    ours, theirs = socket.socketpair()
    sock = ReadAhead(ours)
    body = bytes(range(256)) * (3 * READ_AHEAD_BYTES // 256)
    sender = threading.Thread(target=theirs.sendall, args=(body,))
    sender.start()
    received = bytearray()
    while len(received) < len(body):
        received += sock.recv(len(body) - len(received))
    sender.join()
    assert received == body


@pytest.mark.services
def test_every_message_of_the_broker_arrives_once_in_order() -> None:
    run = uuid.uuid4().hex[:8]
    source = SourceSettings(
        name="ttn",
        city=City.DORTMUND,
        format=SourceFormat.TTN_V3,
        topic=f"readahead/{run}/#",
        qos=0,
        client_id=f"readahead-{run}",
    )
    inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
    sub = Subscriber(Settings(broker_url=BROKER_URL, sources=(source,)), inbox=inbox)
    # Small bodies, many to one read, and some larger than a read.
    bodies = [f"{i:06d}".encode() * (1 + i % 40) for i in range(3000)]
    bodies[1000] = b"x" * (2 * READ_AHEAD_BYTES + 17)
    bodies[2000] = bytes(range(256)) * 1000
    endpoint = parse_broker_url(BROKER_URL)
    publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"readahead-pub-{run}")
    sub.start()
    try:
        assert sub.wait_connected(10)
        assert isinstance(sub._clients[0].socket(), ReadAhead)
        publisher.connect(endpoint.host, endpoint.port)
        publisher.loop_start()
        for i, body in enumerate(bodies):
            publisher.publish(f"readahead/{run}/devices/d{i % 7}/up", body, qos=1)
        received = [inbox.get(timeout=10) for _ in bodies]
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        sub.stop()
    assert [m.body for m in received] == bodies
    topics = [f"readahead/{run}/devices/d{i % 7}/up" for i in range(len(bodies))]
    assert [m.topic for m in received] == topics
    assert inbox.empty()
