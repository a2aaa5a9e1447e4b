"""Value kinds, one device at a time: cycles, counters, increments, fill levels, states."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import TypeAdapter

from simulators.scenario import ScenarioError, ValueSpec, parse_scenario
from simulators.values import DeviceValues, poisson

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = datetime(2024, 3, 4, tzinfo=UTC)
SATURDAY = datetime(2024, 3, 9, tzinfo=UTC)
SPECS = TypeAdapter(dict[str, ValueSpec])


def _device(specs: dict[str, Any], seed: int = 1) -> DeviceValues:
    return DeviceValues(SPECS.validate_python(specs), rng=random.Random(seed), zone=BERLIN)


def _series(device: DeviceValues, start: datetime, step_s: int, n: int) -> list[dict[Any, Any]]:
    return [device.at(start + timedelta(seconds=step_s * i)) for i in range(n)]


def test_cycle_peaks_at_its_local_hour() -> None:
    device = _device(
        {"t": {"mean": 10, "daily_amplitude": 5, "peak_hour": 15, "min": -50, "max": 50}}
    )
    # 14:00 UTC is 15:00 in Berlin in winter; without noise the value is exact.
    assert device.at(MONDAY.replace(hour=14))[("t",)] == pytest.approx(15)
    assert device.at(MONDAY.replace(hour=2))[("t",)] == pytest.approx(5)


def test_cycle_is_clamped() -> None:
    device = _device({"t": {"mean": 10, "noise": 100, "min": 0, "max": 20}})
    values = [v[("t",)] for v in _series(device, MONDAY, 60, 500)]
    assert min(values) == 0 and max(values) == 20


def test_weekend_mean_and_factor() -> None:
    spec = {"co2": {"mean": 800, "daily_amplitude": 400, "peak_hour": 11, "weekend_mean": 420,
                    "weekend_factor": 0, "min": 400, "max": 5000}}  # fmt: skip
    device = _device(spec)
    assert device.at(MONDAY.replace(hour=10))[("co2",)] == pytest.approx(1200)
    assert device.at(SATURDAY.replace(hour=10))[("co2",)] == pytest.approx(420)


def test_counter_grows_at_its_rate_and_increment_follows_it() -> None:
    device = _device(
        {
            "total": {"kind": "counter", "rate_per_hour": 600, "initial": [100, 100]},
            "period": {"kind": "increment", "of": "total"},
        }
    )
    series = _series(device, MONDAY, 600, 145)  # one day in 10-minute steps
    totals = [v[("total",)] for v in series]
    assert totals[0] == 100 and series[0][("period",)] == 0
    assert all(
        b - a == v[("period",)] for a, b, v in zip(totals, totals[1:], series[1:], strict=False)
    )
    assert totals[-1] - totals[0] == pytest.approx(600 * 24, rel=0.05)


def test_counter_stops_at_its_max() -> None:
    device = _device(
        {"n": {"kind": "counter", "rate_per_hour": 1000, "max": 150, "initial": [0, 0]}}
    )
    assert [v[("n",)] for v in _series(device, MONDAY, 3600, 3)][-1] == 150


def test_fill_level_rises_and_is_emptied() -> None:
    device = _device({"d": {"kind": "fill", "empty": 1000, "full": 200, "hours_to_full": 10}})
    levels = [v[("d",)] for v in _series(device, MONDAY, 3600, 40)]
    assert all(200 <= level <= 1000 for level in levels)
    drops = sum(b < a for a, b in itertools.pairwise(levels))  # distance shrinks
    resets = sum(b > a for a, b in itertools.pairwise(levels))  # emptied
    assert drops > 30 and 3 <= resets <= 5


def test_state_follows_its_hourly_probability() -> None:
    hourly = [0.0] * 12 + [1.0] * 12
    device = _device({"occupied": {"kind": "state", "probability": hourly}})
    # Berlin is UTC+1 in March: local hours 0-11 are 23:00-10:59 UTC.
    assert device.at(MONDAY.replace(hour=5))[("occupied",)] == 0
    assert device.at(MONDAY.replace(hour=15))[("occupied",)] == 1


def test_devices_with_the_same_seed_agree() -> None:
    spec = {"t": {"mean": 10, "noise": 2, "spread": 1, "min": -50, "max": 50}}
    assert _series(_device(spec, 3), MONDAY, 600, 20) == _series(_device(spec, 3), MONDAY, 600, 20)
    assert _series(_device(spec, 3), MONDAY, 600, 20) != _series(_device(spec, 4), MONDAY, 600, 20)


@pytest.mark.parametrize("mean", [0.5, 5, 100])
def test_poisson_has_its_mean(mean: float) -> None:
    rng = random.Random(0)
    draws = [poisson(rng, mean) for _ in range(4000)]
    assert min(draws) >= 0
    assert sum(draws) / len(draws) == pytest.approx(mean, rel=0.1)


def test_increment_must_name_a_counter(scenario_data: dict[str, Any]) -> None:
    fleet = next(f for f in scenario_data["fleets"] if f["profile"] == "milesight-iot/vs133")
    fleet["values"]["line_1/total_out"] = {"kind": "increment", "of": "line_1/nothing"}
    with pytest.raises(ScenarioError, match="must name a counter field"):
        parse_scenario(scenario_data)
