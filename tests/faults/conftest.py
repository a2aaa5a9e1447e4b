"""Fixtures of the fault tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from faultkit import Broker


@pytest.fixture
def broker() -> Iterator[Broker]:
    """A private Mosquitto of the test's own, which the test may stop and start again."""
    broker = Broker()
    broker.start()
    yield broker
    broker.close()
