"""The progress bar: redrawn in place on a terminal, a plain line now and then otherwise."""

from __future__ import annotations

import io

from datahub.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_line_redrawn() -> None:
    stream = Terminal()
    progress = Progress("redecode", stream=stream, width=10)
    progress.update(250, 1000, "changed 3")
    progress.update(1000, 1000, "changed 9")
    progress.finish()

    assert stream.getvalue() == (
        "\rredecode [##--------]  25% 250/1000 changed 3\x1b[K"
        "\rredecode [##########] 100% 1000/1000 changed 9\x1b[K\n"
    )


def test_a_pipe_gets_a_line_per_interval_and_the_last_state() -> None:
    now = [0.0]
    stream = io.StringIO()
    progress = Progress("redecode", stream=stream, width=4, interval_s=10, clock=lambda: now[0])
    progress.update(1, 8)
    now[0] = 5.0
    progress.update(2, 8)  # within the interval: not written
    now[0] = 12.0
    progress.update(4, 8)
    progress.update(9, 8)  # rows that arrived after the count: capped at 100 %
    progress.finish()

    assert stream.getvalue().splitlines() == [
        "redecode [----]  12% 1/8",
        "redecode [##--]  50% 4/8",
        "redecode [####] 100% 9/8",
    ]
