"""The benchmark's C publishers deliver every message, also past 65,535 per source.

`mosquitto_pub -l` at QoS 1 stops after the acknowledgement of the packet id of its last
line, and packet ids repeat after 65,535 lines: fed 74,929 lines it sent ~10,000 and exited
0. That starved `bench ingest --workers 4` of most QoS 1 messages, which looked like an
ingest stall (35,464 of 100,000 stored). Against the real broker.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid

import pytest
from realservices import BROKER_URL
from waiting import wait_until

from datahub.bench import ceilings
from datahub.config import parse_broker_url

pytestmark = pytest.mark.services

LINES = 70_000  # more than the 65,535 packet ids of one connection


def test_qos1_publishers_send_every_line_past_the_packet_id_range() -> None:
    broker = parse_broker_url(BROKER_URL)
    topic = f"test/publishers/{uuid.uuid4().hex}"
    counter = subprocess.Popen(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-q", "1", "-t", topic],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    received = {"lines": 0, "probed": False}

    def count() -> None:
        assert counter.stdout is not None
        for line in counter.stdout:
            if line.startswith(b"probe"):
                received["probed"] = True
            else:
                received["lines"] += 1

    threading.Thread(target=count, daemon=True).start()
    try:
        deadline = time.monotonic() + 10
        while not received["probed"]:  # the subscription is in place once a probe comes back
            assert time.monotonic() < deadline, "mosquitto_sub did not subscribe"
            subprocess.run(
                ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t", topic,
                 "-m", "probe"],
                check=True,
            )  # fmt: skip
            time.sleep(0.2)
        bodies = [b"line %d" % i for i in range(LINES)]
        publishers = ceilings.publish_lines(
            broker, {"one-source": (topic, bodies)}, qos=1, run=f"test-{uuid.uuid4().hex[:8]}"
        )
        ceilings.wait_publishers(publishers, 90)
        wait_until("every line to arrive", lambda: received["lines"] >= LINES, 30)
    finally:
        counter.kill()
        counter.wait()
    assert received["lines"] == LINES
    assert len(publishers) == 2  # 70,000 lines take two publishers of at most 50,000
