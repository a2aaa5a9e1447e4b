"""The device catalog the processes use: built-in profiles plus the configured codec directory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import decoders
from datahub.config import Settings
from decoders.codec_dir import CodecCatalog


def open_catalog(settings: Settings) -> CodecCatalog:
    """Merge the built-in catalog with `catalog.codecs_dir`; bad codec files are skipped."""
    section = settings.catalog
    return CodecCatalog(
        decoders.CATALOG,
        section.codecs_dir,
        timeout_ms=section.codec_timeout_ms,
        max_memory_bytes=section.codec_max_memory_mb * 1024 * 1024,
    )


@dataclass(frozen=True, slots=True)
class ProfileInfo:
    """One line of `datahub decoders list`."""

    id: str
    vendor: str
    model: str
    kind: str  # python | javascript
    version: str
    metrics: tuple[str, ...]


def list_profiles(catalog: CodecCatalog) -> list[ProfileInfo]:
    """Describe every profile of the merged catalog, sorted by id."""
    return [
        ProfileInfo(
            id=profile.id,
            vendor=profile.vendor,
            model=profile.model,
            kind="javascript" if catalog.is_javascript(profile.id) else "python",
            version=profile.version,
            metrics=tuple(m.metric for m in profile.mappings),
        )
        for profile in sorted(catalog.values(), key=lambda p: p.id)
    ]


@dataclass(frozen=True, slots=True)
class ExampleOutcome:
    """One example replayed through its profile's decoder."""

    profile: str
    index: int
    description: str
    failure: str | None  # None: the decoder reproduced the example exactly


def replay_examples(
    profiles: Mapping[str, decoders.Profile], profile_ids: Iterable[str] | None = None
) -> list[ExampleOutcome]:
    """Replay the examples of the given profiles (default: all), comparing JSON types too."""
    outcomes = []
    for profile_id in sorted(profile_ids if profile_ids is not None else profiles):
        profile = profiles[profile_id]
        for index, example in enumerate(profile.examples):
            try:
                decoded = profile.decode(example.f_port, example.payload)
            except decoders.DecodeError as exc:
                failure = None if example.errors else f"decoder refused it: {exc}"
            except Exception as exc:  # a crashing decoder is a failed example, not a crash
                failure = f"decoder crashed: {exc!r}"
            else:
                if example.errors:
                    failure = f"expected errors {list(example.errors)}, got {decoded!r}"
                else:
                    failure = mismatch(decoded, example.expected)
            outcomes.append(ExampleOutcome(profile_id, index, example.description, failure))
    return outcomes


def mismatch(got: Any, expected: Any, where: str = "data") -> str | None:
    """Describe the first difference in value or JSON type (int vs float vs bool), if any."""
    if type(got) is not type(expected):
        kinds = f"{type(got).__name__} vs {type(expected).__name__}"
        return f"{where}: {got!r} != {expected!r} ({kinds})"
    if isinstance(expected, dict):
        if set(got) != set(expected):
            return f"{where}: keys {sorted(got)} != {sorted(expected)}"
        for key in expected:
            if found := mismatch(got[key], expected[key], f"{where}[{key!r}]"):
                return found
        return None
    if isinstance(expected, list):
        if len(got) != len(expected):
            return f"{where}: {len(got)} items != {len(expected)}"
        for index, (item, wanted) in enumerate(zip(got, expected, strict=True)):
            if found := mismatch(item, wanted, f"{where}[{index}]"):
                return found
        return None
    return None if got == expected else f"{where}: {got!r} != {expected!r}"
