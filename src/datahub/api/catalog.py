"""The API's view of the device catalog: canonical metrics, their units, who reports them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import decoders


class MetricLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def description(self) -> str: ...


class MappingLike(Protocol):
    @property
    def metric(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def scale(self) -> float: ...
    @property
    def wrap(self) -> int | None: ...


class ProfileLike(Protocol):
    @property
    def mappings(self) -> Sequence[MappingLike]: ...
    @property
    def reporting_interval_s(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class MetricInfo:
    name: str
    unit: str
    description: str
    profiles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MetricCatalog:
    """Metric name -> metric, and profile name -> the metrics its mapping produces."""

    metrics: Mapping[str, MetricInfo]
    profile_metrics: Mapping[str, tuple[str, ...]]
    # metric -> {profile: modulus} for the profiles that report the metric as a counter;
    # the modulus (2**wrap times the scale, in the metric's unit) is None when unknown.
    counters: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    # profile -> typical seconds between uplinks
    intervals: Mapping[str, int | None] = field(default_factory=dict)

    @classmethod
    def build(
        cls, metrics: Mapping[str, MetricLike], profiles: Mapping[str, ProfileLike]
    ) -> MetricCatalog:
        """Index a catalog's metrics and profiles for the lookups the API makes."""
        profile_metrics = {
            name: tuple(sorted({m.metric for m in profile.mappings}))
            for name, profile in profiles.items()
        }
        infos = {
            name: MetricInfo(
                name=name,
                unit=metric.unit,
                description=metric.description,
                profiles=tuple(sorted(p for p, ms in profile_metrics.items() if name in ms)),
            )
            for name, metric in sorted(metrics.items())
        }
        counters: dict[str, dict[str, float | None]] = {}
        for name, profile in sorted(profiles.items()):
            for m in profile.mappings:
                if m.kind == "counter":
                    modulus = float(2**m.wrap * m.scale) if m.wrap is not None else None
                    counters.setdefault(m.metric, {})[name] = modulus
        intervals = {name: profile.reporting_interval_s for name, profile in profiles.items()}
        return cls(
            metrics=infos, profile_metrics=profile_metrics, counters=counters, intervals=intervals
        )

    @classmethod
    def from_decoders(cls) -> MetricCatalog:
        """Index the device catalog shipped in the `decoders` package."""
        return cls.build(decoders.METRICS, decoders.CATALOG)

    def unit(self, metric: str) -> str | None:
        """Return a metric's unit; None for a metric the catalog no longer knows."""
        info = self.metrics.get(metric)
        return info.unit if info is not None else None

    def metrics_of(self, profile: str) -> tuple[str, ...]:
        """Return the metrics a profile reports; none for a profile the catalog lacks."""
        return self.profile_metrics.get(profile, ())

    def counter_profiles(self, metric: str) -> Mapping[str, float | None]:
        """Return profile -> modulus for the profiles that report `metric` as a counter."""
        return self.counters.get(metric, {})

    def is_counter(self, profile: str, metric: str) -> bool:
        """Tell whether a profile reports `metric` as a running total."""
        return profile in self.counters.get(metric, {})

    def profiles_reporting(self, metric: str) -> tuple[str, ...]:
        """Return the profiles whose mapping produces `metric`."""
        info = self.metrics.get(metric)
        return info.profiles if info is not None else ()

    def reporting_interval(self, profile: str) -> int | None:
        """Return a profile's typical seconds between uplinks; None if unknown."""
        return self.intervals.get(profile)
