"""Waiting in tests: for a condition, polled and bounded, never for a guessed time."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable


def wait_until(
    what: str, check: Callable[[], bool], timeout: float = 30, every: float = 0.1
) -> None:
    """Poll `check` until it is true; fail after `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def http_status(url: str, timeout: float = 2) -> int:
    """Return the status of a GET of `url`; 0 if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def serving(url: str, process: subprocess.Popen[bytes]) -> bool:
    """Tell whether the server `process` at `url` is ready; fail if it exited."""
    assert process.poll() is None, f"the server for {url} exited with {process.returncode}"
    return http_status(f"{url}/health/ready") == 200
