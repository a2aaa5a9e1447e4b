"""Fixtures of the operations tests: a local SMTP server (a real one, on loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from opskit import Inbox, Smtp, free_port


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    """An aiosmtpd server on loopback that keeps every message it is given."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield Smtp("127.0.0.1", port, inbox)
    controller.stop()
