"""A progress bar for long commands: redrawn in place on a terminal, plain lines otherwise.

Not a library's: a re-decode or a data set load runs for hours, often with its output in a
log file, which needs a plain line now and then. tqdm writes its redraws (carriage
returns, no newline) to a file as to a terminal, one endless line; rich writes nothing to
a file until the end (both tried, tqdm 4.70, rich 15). tests/test_progress.py pins both forms.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """Show `done` of `total` with a note; on a terminal as a bar, else a line now and then."""

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        width: int = 30,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._width = width
        self._interval_s = interval_s  # between plain lines; a terminal is redrawn each time
        self._clock = clock
        self._last = float("-inf")
        self._line = ""
        self._written = ""  # the last plain line written

    def update(self, done: int, total: int, note: str = "") -> None:
        """Report progress; plain output is written at most once per interval."""
        self._line = self._render(done, total, note)
        if self._tty:
            self._stream.write(f"\r{self._line}\x1b[K")
            self._stream.flush()
        elif self._clock() - self._last >= self._interval_s:
            self._last = self._clock()
            self._write_line()

    def finish(self) -> None:
        """End the bar: a newline on a terminal, the last state as a line otherwise."""
        if self._tty:
            if self._line:
                self._stream.write("\n")
        elif self._line != self._written:
            self._write_line()
        self._stream.flush()

    def _write_line(self) -> None:
        self._stream.write(self._line + "\n")
        self._stream.flush()
        self._written = self._line

    def _render(self, done: int, total: int, note: str) -> str:
        # The total is counted at the start; rows arriving meanwhile may push done past it.
        fraction = min(1.0, done / total) if total > 0 else 1.0
        filled = round(fraction * self._width)
        bar = "#" * filled + "-" * (self._width - filled)
        text = f"{self._label} [{bar}] {fraction:4.0%} {done}/{total}"
        return f"{text} {note}" if note else text
