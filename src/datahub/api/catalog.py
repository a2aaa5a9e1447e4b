"""The API's view of the device catalog: canonical metrics, their units, who reports them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import decoders
from decoders.codec_dir import CodecCatalog


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
    @property
    def decimals(self) -> int | None: ...


class ProfileLike(Protocol):
    @property
    def mappings(self) -> Sequence[MappingLike]: ...
    @property
    def reporting_interval_s(self) -> int | None: ...


def _as_stored(value: float) -> float:
    return value


@dataclass(frozen=True, slots=True)
class MetricInfo:
    name: str
    unit: str
    description: str
    profiles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProfileInfo:
    """What the catalog says of a profile beyond its metrics (the SensorThings Sensor)."""

    vendor: str
    model: str
    description: str
    version: str | None
    mappings: tuple[tuple[str, str, float], ...]  # (metric, kind, scale) of each mapping


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
    # (profile, metric) -> the decimal places values are rendered with (the vendor's
    # resolution); a pair without one is rendered as stored
    decimals: Mapping[tuple[str, str], int] = field(default_factory=dict)
    profiles: Mapping[str, ProfileInfo] = field(default_factory=dict)

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
        decimals = {
            (name, m.metric): m.decimals
            for name, profile in profiles.items()
            for m in profile.mappings
            if m.decimals is not None
        }
        described = {name: _profile_info(name, profile) for name, profile in profiles.items()}
        return cls(
            metrics=infos,
            profile_metrics=profile_metrics,
            counters=counters,
            intervals=intervals,
            decimals=decimals,
            profiles=described,
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

    def rounder(self, profile: str, metric: str) -> Callable[[float], float]:
        """Return what renders a profile's values of `metric` at the resolution its mapping
        declares (`round` to its decimal places), or leaves them as stored."""
        places = self.decimals.get((profile, metric))
        if places is None:
            return _as_stored
        return lambda value: round(value, places)

    def reporting_interval(self, profile: str) -> int | None:
        """Return a profile's typical seconds between uplinks; None if unknown."""
        return self.intervals.get(profile)


def _profile_info(name: str, profile: ProfileLike) -> ProfileInfo:
    # Vendor, model, description and version are the catalog's `Profile` fields; a profile
    # without them (a test's) is described by its name.
    vendor, _, model = name.partition("/")
    return ProfileInfo(
        vendor=getattr(profile, "vendor", vendor),
        model=getattr(profile, "model", model),
        description=getattr(profile, "description", name),
        version=getattr(profile, "version", None),
        mappings=tuple((m.metric, m.kind, m.scale) for m in profile.mappings),
    )


class LiveCatalog:
    """The metric catalog of a codec directory that may change while the API runs.

    `changed` looks at the directory at most every `min_interval_s` seconds (a few stat
    calls); when a codec or mapping was added, changed or removed, `reload` rescans it and
    rebuilds the index, so a new model's devices show their metrics without a restart.
    `reload` loads codecs into V8, which refuses its time limits on an event loop's
    thread: call it from a worker thread.
    """

    def __init__(self, codecs: CodecCatalog, *, min_interval_s: float = 2.0) -> None:
        self._codecs = codecs
        self._min_interval_s = min_interval_s
        self._metrics = MetricCatalog.build(decoders.METRICS, codecs)

    def changed(self) -> bool:
        """Tell whether the directory changed since the last look."""
        return self._codecs.changed(min_interval_s=self._min_interval_s)

    def reload(self) -> MetricCatalog:
        """Rescan the directory and rebuild the index; return it."""
        self._codecs.rescan()
        self._metrics = MetricCatalog.build(decoders.METRICS, self._codecs)
        return self._metrics

    @property
    def current(self) -> MetricCatalog:
        return self._metrics
