"""CPU accounting of a benchmark phase, on this machine's own processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from datahub.bench import cpu

pytestmark = pytest.mark.skipif(not cpu.available(), reason="needs Linux's /proc")

# A child that burns about 0.3 s of CPU time, then exits.
BURN = [
    sys.executable,
    "-c",
    "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass",
]


def test_listener_pid_finds_the_process_listening_on_a_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert cpu.listener_pid(port) == os.getpid()
        assert cpu.server("127.0.0.1", port) == cpu.Group(pids=(os.getpid(),), leader=os.getpid())
        assert cpu.server("localhost", port) is not None
    assert cpu.listener_pid(port) is None  # closed


def test_a_server_elsewhere_is_not_measured() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert cpu.server("192.0.2.7", listener.getsockname()[1]) is None


def test_watch_counts_a_leaders_children_also_after_they_exit() -> None:
    watch = cpu.Watch({"tree": cpu.Group(leader=os.getpid()), "none": None})
    subprocess.run(BURN, check=True)  # started, burned and reaped inside the phase
    spent = watch.stop()
    assert set(spent) == {"tree", "children", "machine"}
    assert 0.25 <= spent["tree"] < 5
    assert 0.25 <= spent["children"] < 5  # the waited-for child, by getrusage
    assert spent["machine"] >= 0.25


def test_watch_counts_a_running_process_by_its_pid() -> None:
    # Burns its 0.3 s, says so, and keeps running until killed.
    child = subprocess.Popen(
        [*BURN[:2], BURN[2] + "\nprint('burned', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        watch = cpu.Watch({"child": cpu.Group(pids=(child.pid,))})
        assert child.stdout is not None and child.stdout.readline() == "burned\n"
        spent = watch.stop()
    finally:
        child.kill()
        child.wait()
    assert 0.2 <= spent["child"] < 5


def test_per_uplink_and_budget_figures() -> None:
    assert cpu.per_uplink_us({"ingest": 0.9, "machine": 1.75}, 10_000) == {
        "ingest": 90.0,
        "machine": 175.0,
    }
    assert cpu.per_uplink_us({"ingest": 1.0}, 0) == {}
    assert cpu.budget_us(20_000, cores=2) == 100.0
    assert cpu.budget_us(0, cores=2) == 0.0
