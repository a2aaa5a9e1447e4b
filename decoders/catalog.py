"""The catalog's building blocks: profiles, metric mappings, examples and errors.

A `Profile` is one vendor model: a pure decoder reproducing the vendor codec's `data`
object, the mapping of its numeric fields onto canonical metrics, and the example
vectors that prove the decoder. The catalog of profiles is `decoders.CATALOG`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Any

from decoders.metrics import METRICS

Decoder = Callable[[int, bytes], dict[str, Any]]
# Decodes many (f_port, payload) pairs in one go; each result is the data object or the
# DecodeError that decoding that payload alone would raise.
BatchDecoder = Callable[[Sequence[tuple[int, bytes]]], list["dict[str, Any] | DecodeError"]]


class DecodeError(Exception):
    """The payload is not one the decoder can turn into the vendor's data object."""


class UnknownProfile(KeyError):
    """No profile in the catalog has this id."""

    def __init__(self, profile_id: str) -> None:
        super().__init__(profile_id)
        self.profile_id = profile_id

    def __str__(self) -> str:
        return f"unknown device profile {self.profile_id!r}"


class MetricKind(StrEnum):
    """How a device reports a metric."""

    GAUGE = "gauge"  # a level at the time of the reading
    COUNTER = "counter"  # a running total that only grows (until it wraps or resets)
    STATE = "state"  # one of a few discrete states, such as 1 occupied / 0 free


@dataclass(frozen=True, slots=True)
class MetricMapping:
    """One decoded field as a canonical metric: value at `path`, times `scale`."""

    path: tuple[str, ...]  # keys into the decoded object; keys may contain dots ("pm2.5")
    metric: str
    kind: MetricKind
    scale: float = 1.0  # multiply the vendor value by this to reach the metric's unit
    # A counter's width in bits, when the payload field is known to wrap around (2**wrap
    # follows 2**wrap - 1); None for gauges and for counters that only ever reset.
    wrap: int | None = None
    # Decimal places of the value in the metric's unit, from the resolution the vendor
    # documents (0.01 °C: 2). The API renders values so, without the binary noise of
    # the decoding (175 * x / 65535 - 45 = 7.154999999999999 is 7.15); stored values
    # stay as decoded. None: no documented resolution, rendered as stored.
    decimals: int | None = None

    def __post_init__(self) -> None:
        if not self.path or not all(isinstance(key, str) for key in self.path):
            raise TypeError(f"path must be a non-empty tuple of keys, got {self.path!r}")
        if self.metric not in METRICS:
            raise ValueError(f"{self.metric!r} is not a canonical metric")
        if self.wrap is not None and (self.kind is not MetricKind.COUNTER or self.wrap < 2):
            raise ValueError(f"{self.metric}: wrap is a counter's width in bits, got {self.wrap}")
        if self.decimals is not None and not 0 <= self.decimals <= 9:
            raise ValueError(f"{self.metric}: decimals must be 0 to 9, got {self.decimals}")


@dataclass(frozen=True, slots=True)
class Example:
    """A payload and the data object the vendor's codec returns for it."""

    description: str
    f_port: int
    payload: bytes
    expected: dict[str, Any]
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Profile:
    """One vendor model of the catalog."""

    id: str  # "vendor/model", as in The Things Network device repository
    vendor: str
    model: str
    description: str
    decode: Decoder
    mappings: tuple[MetricMapping, ...]
    reporting_interval_s: int  # typical interval between uplinks at the vendor's defaults
    examples: tuple[Example, ...]
    version: str  # the decoder's version; bump it when decoded output changes
    # Where a call has a fixed cost worth sharing (a JavaScript codec: a hand-over to V8's
    # thread), the same decoder over many payloads at once; results as `decode` gives them.
    decode_many: BatchDecoder | None = None

    def __post_init__(self) -> None:
        if self.id != f"{self.vendor}/{self.model}":
            raise ValueError(f"profile id {self.id!r} is not {self.vendor!r}/{self.model!r}")
        metrics = [mapping.metric for mapping in self.mappings]
        if len(metrics) != len(set(metrics)):
            raise ValueError(f"{self.id}: a metric is mapped twice in {metrics}")


def _example(raw: dict[str, Any]) -> Example:
    return Example(
        description=raw["description"],
        f_port=raw["f_port"],
        payload=bytes.fromhex(raw["bytes_hex"]),
        expected=raw["expected"],
        warnings=tuple(raw.get("warnings", ())),
        errors=tuple(raw.get("errors", ())),
    )


def load_examples(vendor: str, model: str) -> tuple[Example, ...]:
    """Load a model's example vectors from decoders/examples/<vendor>/<model>.json.

    `examples` are the vendor's own (The Things Network device repository, copied
    verbatim); `codec_runs` are further payloads run through the same vendor codec
    version, covering fields and frame types the vendor's examples leave out.
    """
    source = resources.files("decoders") / "examples" / vendor / f"{model}.json"
    document = json.loads(source.read_text(encoding="utf-8"))
    return tuple(_example(raw) for raw in document["examples"] + document["codec_runs"])
