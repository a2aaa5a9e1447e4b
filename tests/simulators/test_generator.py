"""Uplink generation: reproducible, in time order, counters growing, values within bounds."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from simulators.encoders import ENCODERS
from simulators.generator import SimUplink, generate
from simulators.scenario import (
    ConstantSpec,
    CounterSpec,
    CycleSpec,
    Scenario,
    ScenarioError,
    StateSpec,
    field_path,
)

START = datetime(2024, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)  # as day_of_uplinks


def _by_device(uplinks: list[SimUplink]) -> dict[str, list[SimUplink]]:
    out: dict[str, list[SimUplink]] = defaultdict(list)
    for uplink in uplinks:
        out[uplink.device.dev_eui].append(uplink)
    return out


def test_same_seed_gives_identical_uplinks(demo: Scenario) -> None:
    first = list(generate(demo, seed=42, start=START, count=500))
    second = list(generate(demo, seed=42, start=START, count=500))
    assert first == second


def test_other_seed_gives_other_uplinks(demo: Scenario) -> None:
    first = list(generate(demo, seed=1, start=START, count=200))
    second = list(generate(demo, seed=2, start=START, count=200))
    assert [u.payload for u in first] != [u.payload for u in second]
    assert {u.session.dev_addr for u in first}.isdisjoint({u.session.dev_addr for u in second})


def test_count_limits_the_uplinks(demo: Scenario) -> None:
    assert len(list(generate(demo, seed=1, start=START, count=37))) == 37
    assert list(generate(demo, seed=1, start=START, count=0)) == []


def test_every_device_reports_once_per_interval(
    demo: Scenario, day_of_uplinks: list[SimUplink]
) -> None:
    per_device = _by_device(day_of_uplinks)
    assert set(per_device) == {d.dev_eui for d in demo.devices()}
    for uplinks in per_device.values():
        interval = uplinks[0].device.interval_s
        assert len(uplinks) in (86_400 // interval, 86_400 // interval + 1)


def test_uplinks_come_in_time_order(day_of_uplinks: list[SimUplink]) -> None:
    times = [u.time for u in day_of_uplinks]
    assert times == sorted(times)
    assert times[0] >= START and times[-1] <= START + timedelta(days=1)


def test_times_advance_by_the_interval(day_of_uplinks: list[SimUplink]) -> None:
    for uplinks in _by_device(day_of_uplinks).values():
        interval = timedelta(seconds=uplinks[0].device.interval_s)
        assert START <= uplinks[0].time < START + interval
        assert all(b.time - a.time == interval for a, b in itertools.pairwise(uplinks))


def test_frame_counters_count_up_from_zero(day_of_uplinks: list[SimUplink]) -> None:
    for uplinks in _by_device(day_of_uplinks).values():
        assert [u.f_cnt for u in uplinks] == list(range(len(uplinks)))
        assert len({u.session for u in uplinks}) == 1


def test_counters_only_grow(demo: Scenario, day_of_uplinks: list[SimUplink]) -> None:
    counters = 0
    for dev_eui, uplinks in _by_device(day_of_uplinks).items():
        fleet = demo.fleet(uplinks[0].device.fleet)
        for name, spec in fleet.values.items():
            if isinstance(spec, CounterSpec):
                counters += 1
                series = [u.values[field_path(name)] for u in uplinks]
                assert all(b >= a for a, b in itertools.pairwise(series)), (dev_eui, name)
                if spec.rate_per_hour >= 1:
                    assert series[-1] > series[0], (dev_eui, name)
    assert counters, "the demo should have a counter fleet"


def test_values_stay_within_their_bounds(demo: Scenario, day_of_uplinks: list[SimUplink]) -> None:
    for uplink in day_of_uplinks:
        fleet = demo.fleet(uplink.device.fleet)
        assert set(uplink.values) == set(ENCODERS[fleet.profile].fields)
        for name, spec in fleet.values.items():
            value = uplink.values[field_path(name)]
            if isinstance(spec, CycleSpec):
                assert spec.min <= value <= spec.max, (uplink.device.name, name, value)
            elif isinstance(spec, StateSpec):
                assert value in (spec.on, spec.off), (uplink.device.name, name, value)
            elif isinstance(spec, ConstantSpec):
                assert value == spec.value
            elif isinstance(spec, CounterSpec) and spec.max is not None:
                assert value <= spec.max


def test_values_follow_the_daily_cycle(demo: Scenario, day_of_uplinks: list[SimUplink]) -> None:
    """Averaged over a fleet, readings near the peak hour exceed those twelve hours away."""
    checked = 0
    for fleet in demo.fleets:
        for name, spec in fleet.values.items():
            if not isinstance(spec, CycleSpec) or abs(spec.daily_amplitude) < 4 * spec.noise + 1e-9:
                continue
            near: list[float] = []
            far: list[float] = []
            for uplink in day_of_uplinks:
                if uplink.device.fleet != fleet.name:
                    continue
                local = uplink.time.astimezone(demo.zone)
                hour = local.hour + local.minute / 60
                offset = min(abs(hour - spec.peak_hour), 24 - abs(hour - spec.peak_hour))
                value = uplink.values[field_path(name)]
                (near if offset < 2 else far if offset > 10 else []).append(value)
            high, low = sum(near) / len(near), sum(far) / len(far)
            assert (high > low) == (spec.daily_amplitude > 0), (fleet.name, name)
            checked += 1
    assert checked


def test_payload_is_the_encoding_of_the_values(day_of_uplinks: list[SimUplink]) -> None:
    for uplink in day_of_uplinks[:300]:
        encoder = ENCODERS[uplink.device.profile]
        assert encoder.encode(uplink.values) == (uplink.f_port, uplink.payload)


def test_end_bounds_a_backfill(demo: Scenario) -> None:
    end = START + timedelta(hours=1)
    uplinks = list(generate(demo, seed=3, start=START, end=end))
    assert uplinks[-1].time <= end
    for dev_eui, mine in _by_device(uplinks).items():
        assert len(mine) - 3600 // mine[0].device.interval_s in (0, 1), dev_eui


def test_realtime_dates_uplinks_now(demo: Scenario) -> None:
    before = datetime.now(UTC)
    uplinks = list(generate(demo, seed=5, count=50, realtime=True))
    after = datetime.now(UTC)
    assert all(before <= u.time <= after for u in uplinks)
    backfill = list(generate(demo, seed=5, start=before, count=50))
    assert [(u.device.dev_eui, u.f_cnt) for u in uplinks] == [
        (u.device.dev_eui, u.f_cnt) for u in backfill
    ]


def test_naive_start_is_refused(demo: Scenario) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next(generate(demo, seed=1, start=datetime(2024, 1, 1)))


def test_realtime_with_speed_waits_for_the_schedule(demo: Scenario) -> None:
    started = time.monotonic()
    uplinks = list(generate(demo, seed=5, count=20, realtime=True, speed=20_000))
    # The 20th report is due within its device's first interval: at most 3600 s / 20000.
    assert time.monotonic() - started < 5
    times = [u.time for u in uplinks]
    assert times == sorted(times)


def test_profiles_without_encoder_are_refused(demo: Scenario) -> None:
    with pytest.raises(ScenarioError, match="no encoder for profile"):
        next(generate(demo, seed=1, start=START, encoders={}))


def test_realtime_from_a_past_start_sends_history_dated_when_due_then_goes_live(
    demo: Scenario,
) -> None:
    begun = datetime.now(UTC)
    start = begun - timedelta(hours=1)
    uplinks = list(generate(demo, seed=3, start=start, realtime=True, count=3000))
    history = [u for u in uplinks if u.time < begun]
    live = [u for u in uplinks if u.time >= begun]
    assert history and live
    assert uplinks[: len(history)] == history  # history first, in time order
    assert all(start <= u.time for u in history)
    assert [u.time for u in history] == sorted(u.time for u in history)
