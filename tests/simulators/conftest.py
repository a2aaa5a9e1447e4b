"""Fixtures for the simulator tests: the demo scenario, loaded once, and its uplinks."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from simulators.generator import SimUplink, generate
from simulators.scenario import DEFAULT_SCENARIO, Scenario, load_scenario

START = datetime(2024, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)  # a Monday, before DST


@pytest.fixture(scope="session")
def demo() -> Scenario:
    return load_scenario(DEFAULT_SCENARIO)


@pytest.fixture(scope="session")
def demo_data() -> dict[str, Any]:
    """The demo scenario as plain data; tests change a deep copy of it."""
    data: dict[str, Any] = yaml.safe_load(DEFAULT_SCENARIO.read_text(encoding="utf-8"))
    return data


@pytest.fixture
def scenario_data(demo_data: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(demo_data)


@pytest.fixture(scope="session")
def day_of_uplinks(demo: Scenario) -> list[SimUplink]:
    """One simulated day of the whole demo fleet, seed 7."""
    return list(generate(demo, seed=7, start=START, end=START.replace(day=START.day + 1)))
