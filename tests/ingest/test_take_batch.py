"""Taking a batch from the inbox: a signal during the wait never leaves it waiting for good
(no services; the wait runs in a child process, so that a hang fails the test instead of
stalling it)."""

from __future__ import annotations

import subprocess
import sys

# A SIGTERM handler that outlasts what is left of the wait: CPython 3.11's
# SimpleQueue.get(timeout=…) then takes the negative remainder for "no timeout".
CHILD = """
import os, queue, signal, threading, time
from datahub.ingest.supervisor import take_batch
handled = []
signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.1), handled.append(1)))
threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGTERM)).start()
started = time.monotonic()
batch = take_batch(queue.SimpleQueue(), size=10, wait_s=0.05)
time.sleep(0.2)  # the deferred handler runs
print(batch, handled, round(time.monotonic() - started, 1))
"""


def test_a_signal_during_the_wait_for_a_batch_never_blocks_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=10, check=False
    )
    assert done.returncode == 0, done.stderr
    batch, handled, _ = done.stdout.rsplit(" ", 2)
    assert (batch, handled) == ("[]", "[1]"), done.stdout
