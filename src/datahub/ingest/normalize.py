"""Normalize stage: a decoded object to canonical readings through the profile's mapping."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import decoders
from datahub.domain import Reading


@dataclass(slots=True)  # not frozen: one per uplink ingested, built 5x faster
class Normalized:
    readings: tuple[Reading, ...]
    skipped: tuple[str, ...]  # "path: why", for fields the mapping names but could not use


def _lookup(data: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = data
    for key in path:  # keys may contain dots ("pm2.5"), so paths are tuples, never split
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def to_readings(
    data: Mapping[str, Any],
    mappings: Sequence[decoders.MetricMapping],
    *,
    time: datetime,
    dev_eui: str,
) -> Normalized:
    """Map decoded fields to canonical metrics; non-numeric and non-finite values are skipped."""
    readings: list[Reading] = []
    skipped: list[str] = []
    for mapping in mappings:
        raw = _lookup(data, mapping.path)
        if raw is None:
            continue  # the payload did not carry this field; not an error
        if isinstance(raw, bool):
            raw = int(raw)
        if not isinstance(raw, int | float):
            skipped.append(f"{'.'.join(mapping.path)}: not a number ({raw!r})")
            continue
        value = float(raw) * mapping.scale if mapping.scale != 1 else float(raw)
        if not math.isfinite(value):
            skipped.append(f"{'.'.join(mapping.path)}: not finite ({raw!r})")
            continue
        readings.append(Reading(time=time, dev_eui=dev_eui, metric=mapping.metric, value=value))
    return Normalized(readings=tuple(readings), skipped=tuple(skipped))
