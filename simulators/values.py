"""Value generation: what one simulated device measures at a given time.

Each device draws from its own `random.Random`, seeded from the run's seed and its dev_eui, so
a run is reproducible and one device's values do not depend on which other devices exist.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from datetime import datetime, tzinfo

from simulators.scenario import (
    ConstantSpec,
    CounterSpec,
    CycleSpec,
    FieldPath,
    FillSpec,
    IncrementSpec,
    StateSpec,
    ValueSpec,
    field_path,
)

SECONDS_PER_DAY = 86_400.0


def device_rng(seed: int | str, dev_eui: str, purpose: str) -> random.Random:
    """A random stream for one device and one purpose ("values", "radio"), fixed by the seed."""
    # String seeds are hashed with SHA-512 by `random`, independent of PYTHONHASHSEED.
    return random.Random(f"{seed}/{purpose}/{dev_eui}")


def local_hour(time: datetime, zone: tzinfo) -> float:
    """Fractional hour of the day (0 <= h < 24) in the scenario's time zone."""
    local = time.astimezone(zone)
    return local.hour + local.minute / 60 + local.second / 3600


def is_weekend(time: datetime, zone: tzinfo) -> bool:
    return time.astimezone(zone).weekday() >= 5


def daily_wave(hour: float, peak_hour: float) -> float:
    """A cosine over the day: +1 at `peak_hour`, -1 twelve hours later."""
    return math.cos(2 * math.pi * (hour - peak_hour) / 24)


def poisson(rng: random.Random, mean: float) -> int:
    """Draw from a Poisson distribution (Knuth for small means, a normal approximation above)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class DeviceValues:
    """The measured state of one device; `at(time)` draws its next raw (unquantized) values."""

    def __init__(self, specs: Mapping[str, ValueSpec], *, rng: random.Random, zone: tzinfo) -> None:
        self._specs = {field_path(name): spec for name, spec in specs.items()}
        self._rng = rng
        self._zone = zone
        # Fixed per-device traits, drawn once in field order so they are reproducible.
        self._offsets: dict[FieldPath, float] = {}
        self._counters: dict[FieldPath, int] = {}
        self._increments: dict[FieldPath, int] = {}
        self._fill: dict[FieldPath, float] = {}  # fraction of full, 0..1
        self._fill_hours: dict[FieldPath, float] = {}
        for path, spec in self._specs.items():
            if isinstance(spec, CycleSpec):
                self._offsets[path] = rng.gauss(0, spec.spread) if spec.spread else 0.0
            elif isinstance(spec, CounterSpec):
                self._counters[path] = rng.randint(*spec.initial)
                self._increments[path] = 0
            elif isinstance(spec, FillSpec):
                self._fill[path] = rng.random()
                self._fill_hours[path] = spec.hours_to_full * rng.uniform(
                    1 - spec.jitter, 1 + spec.jitter
                )
        self._first: datetime | None = None
        self._last: datetime | None = None

    def at(self, time: datetime) -> dict[FieldPath, float]:
        """Draw the values reported at `time`; counters grow by what accrued since the last call."""
        if self._first is None:
            self._first = time
        elapsed_s = 0.0 if self._last is None else max(0.0, (time - self._last).total_seconds())
        self._last = time
        hour = local_hour(time, self._zone)
        weekend = is_weekend(time, self._zone)
        values: dict[FieldPath, float] = {}
        for path, spec in self._specs.items():
            if isinstance(spec, CycleSpec):
                values[path] = self._cycle(path, spec, time, hour, weekend)
            elif isinstance(spec, CounterSpec):
                values[path] = self._count(path, spec, elapsed_s, hour, weekend)
            elif isinstance(spec, StateSpec):
                on = self._rng.random() < spec.probability_at(int(hour))
                values[path] = spec.on if on else spec.off
            elif isinstance(spec, FillSpec):
                values[path] = self._level(path, spec, elapsed_s, hour)
            elif isinstance(spec, ConstantSpec):
                values[path] = spec.value
        for path, spec in self._specs.items():
            if isinstance(spec, IncrementSpec):  # after the counters it refers to
                values[path] = self._increments[field_path(spec.of)]
        return {path: values[path] for path in self._specs}

    def _cycle(
        self, path: FieldPath, spec: CycleSpec, time: datetime, hour: float, weekend: bool
    ) -> float:
        assert self._first is not None
        amplitude = spec.daily_amplitude * (spec.weekend_factor if weekend else 1.0)
        mean = spec.weekend_mean if weekend and spec.weekend_mean is not None else spec.mean
        day_of_year = time.astimezone(self._zone).timetuple().tm_yday
        days = (time - self._first).total_seconds() / SECONDS_PER_DAY
        value = (
            mean
            + self._offsets[path]
            + amplitude * daily_wave(hour, spec.peak_hour)
            + spec.annual_amplitude * math.cos(2 * math.pi * (day_of_year - spec.peak_day) / 365.25)
            + spec.drift_per_day * days
            + (self._rng.gauss(0, spec.noise) if spec.noise else 0.0)
        )
        return min(spec.max, max(spec.min, value))

    def _count(
        self, path: FieldPath, spec: CounterSpec, elapsed_s: float, hour: float, weekend: bool
    ) -> int:
        # The rate at the end of the interval stands for the whole interval; good enough for
        # intervals of minutes to an hour.
        rate = spec.rate_per_hour * max(
            0.0, 1 + spec.daily_amplitude * daily_wave(hour, spec.peak_hour)
        )
        if weekend:
            rate *= spec.weekend_factor
        value = self._counters[path] + poisson(self._rng, rate * elapsed_s / 3600)
        if spec.max is not None:
            value = min(value, spec.max)
        self._increments[path] = value - self._counters[path]
        self._counters[path] = value
        return value

    def _level(self, path: FieldPath, spec: FillSpec, elapsed_s: float, hour: float) -> float:
        speed = max(0.0, 1 + spec.daily_amplitude * daily_wave(hour, spec.peak_hour))
        fraction = self._fill[path] + speed * elapsed_s / 3600 / self._fill_hours[path]
        if fraction >= 1:
            fraction = 0.0  # emptied
        self._fill[path] = fraction
        level = spec.empty + (spec.full - spec.empty) * fraction
        if spec.noise:
            level += self._rng.gauss(0, spec.noise)
        return min(spec.max, max(spec.min, level))
