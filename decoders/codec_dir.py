"""Profiles from a directory of vendor JavaScript codecs, merged with the built-in catalog.

Layout: `<codecs_dir>/<vendor>/<model>.js` (the vendor's codec file, unchanged) beside
`<model>.yaml`:

    description: Example thermometer
    reporting_interval_s: 600
    metrics:                       # the mapping of decoded fields onto canonical metrics
      - {path: [temperature], metric: temperature, kind: gauge, decimals: 2}  # 0.01 °C
      - {path: [battery, volts], metric: battery_voltage, kind: gauge, scale: 1}
      - {path: [pulses], metric: pulse_count, kind: counter, wrap: 16}  # wrap: counter bits
    examples:                      # optional; replayed by `datahub decoders test`
      - {f_port: 1, bytes_hex: "0a1b", expected: {temperature: 26.19}}

The profile id is `vendor/model`; its version is the first 12 hex digits of the sha256 of
the .js file, so a stored uplink names the exact codec that decoded it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from decoders.catalog import Example, MetricKind, MetricMapping, Profile
from decoders.javascript import DEFAULT_MAX_MEMORY_BYTES, DEFAULT_TIMEOUT_MS, CodecError, JsCodec

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_YAML_KEYS = {"description", "reporting_interval_s", "metrics", "examples"}
_METRIC_KEYS = {"path", "metric", "kind", "scale", "wrap", "decimals"}
_EXAMPLE_KEYS = {"description", "f_port", "bytes_hex", "expected", "warnings", "errors"}


def codec_version(source: bytes) -> str:
    """Name a codec by its content: the first 12 hex digits of its sha256."""
    return hashlib.sha256(source).hexdigest()[:12]


def load_profile(
    js_file: Path,
    *,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
) -> Profile:
    """Build the profile of `<vendor>/<model>.js` and its `<model>.yaml`; CodecError if bad."""
    vendor, model = js_file.parent.name, js_file.stem
    profile_id = f"{vendor}/{model}"
    for part in (vendor, model):
        if not _NAME.match(part):
            raise CodecError(f"{js_file}: {part!r} is not a lower-case vendor or model name")
    yaml_file = js_file.with_suffix(".yaml")
    try:
        source = js_file.read_bytes()
        described = yaml.safe_load(yaml_file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CodecError(f"{js_file}: no {exc.filename} beside it") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CodecError(f"{yaml_file}: {exc}") from exc
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CodecError(f"{js_file}: not UTF-8: {exc}") from exc
    try:
        fields = _fields(described)
    except (KeyError, TypeError, ValueError) as exc:
        raise CodecError(f"{yaml_file}: {exc}") from exc
    codec = JsCodec(text, name=profile_id, timeout_ms=timeout_ms, max_memory_bytes=max_memory_bytes)
    try:
        return Profile(
            id=profile_id,
            vendor=vendor,
            model=model,
            decode=codec.decode,
            decode_many=codec.decode_many,
            version=codec_version(source),
            **fields,
        )
    except ValueError as exc:
        raise CodecError(f"{yaml_file}: {exc}") from exc


def _fields(described: Any) -> dict[str, Any]:
    """The yaml's profile fields, checked; raises KeyError, TypeError or ValueError."""
    if not isinstance(described, dict):
        raise ValueError("must be a mapping with description, reporting_interval_s, metrics")
    if unknown := set(described) - _YAML_KEYS:
        raise ValueError(f"unknown keys {sorted(unknown)}; known: {sorted(_YAML_KEYS)}")
    interval = described["reporting_interval_s"]
    if not isinstance(interval, int) or isinstance(interval, bool) or interval <= 0:
        raise ValueError(f"reporting_interval_s must be a positive integer, got {interval!r}")
    metrics = described["metrics"]
    if not isinstance(metrics, list) or not metrics:
        raise ValueError("metrics must be a non-empty list of {path, metric, kind, scale}")
    examples = described.get("examples") or []
    if not isinstance(examples, list):
        raise ValueError("examples must be a list of {f_port, bytes_hex, expected}")
    return {
        "description": str(described["description"]),
        "reporting_interval_s": interval,
        "mappings": tuple(_mapping(index, raw) for index, raw in enumerate(metrics)),
        "examples": tuple(_example(index, raw) for index, raw in enumerate(examples)),
    }


def _mapping(index: int, raw: Any) -> MetricMapping:
    where = f"metrics[{index}]"
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a mapping of path, metric, kind, scale")
    if unknown := set(raw) - _METRIC_KEYS:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    path = raw["path"]
    path = [path] if isinstance(path, str) else path
    if not isinstance(path, list) or not path or not all(isinstance(k, str) for k in path):
        raise ValueError(f"{where}: path must be a key or a list of keys, got {raw['path']!r}")
    try:
        kind = MetricKind(raw.get("kind", "gauge"))
    except ValueError:
        kinds = ", ".join(k.value for k in MetricKind)
        raise ValueError(f"{where}: kind {raw.get('kind')!r} is not one of {kinds}") from None
    scale = raw.get("scale", 1.0)
    if not isinstance(scale, int | float) or isinstance(scale, bool):
        raise ValueError(f"{where}: scale must be a number, got {scale!r}")
    wrap = raw.get("wrap")  # a counter's width in bits, when it wraps around
    if wrap is not None and (not isinstance(wrap, int) or isinstance(wrap, bool)):
        raise ValueError(f"{where}: wrap must be a number of bits, got {wrap!r}")
    decimals = raw.get("decimals")  # the vendor's resolution, in decimal places
    if decimals is not None and (not isinstance(decimals, int) or isinstance(decimals, bool)):
        raise ValueError(f"{where}: decimals must be a whole number, got {decimals!r}")
    try:
        return MetricMapping(
            tuple(path), str(raw["metric"]), kind, float(scale), wrap=wrap, decimals=decimals
        )
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _example(index: int, raw: Any) -> Example:
    where = f"examples[{index}]"
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a mapping of f_port, bytes_hex, expected")
    if unknown := set(raw) - _EXAMPLE_KEYS:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    f_port = raw["f_port"]
    if not isinstance(f_port, int) or not 1 <= f_port <= 255:
        raise ValueError(f"{where}: f_port must be 1..255, got {f_port!r}")
    try:
        payload = bytes.fromhex(str(raw["bytes_hex"]))
    except ValueError:
        raise ValueError(f"{where}: bytes_hex {raw['bytes_hex']!r} is not hex") from None
    expected = raw.get("expected")
    if not isinstance(expected, dict):
        raise ValueError(f"{where}: expected must be the decoded data object")
    return Example(
        description=str(raw.get("description") or f"example {index}"),
        f_port=f_port,
        payload=payload,
        expected=expected,
        warnings=tuple(raw.get("warnings") or ()),
        errors=tuple(raw.get("errors") or ()),
    )


@dataclass(frozen=True, slots=True)
class _Loaded:
    digest: str  # of the .js and .yaml content together
    profile: Profile | None  # None: this content failed to load, for `error`
    error: str | None = None


class CodecCatalog(Mapping[str, Profile]):
    """The built-in catalog plus a codec directory, rescanned on request.

    A rescan reads the directory (a few small files), loads only codecs whose .js or
    .yaml content changed, drops those whose files are gone, and swaps the merged view
    in one assignment, so readers on other threads never see half a rescan. A changed
    file that fails to load is reported and the last good version of that profile stays
    in service (an operator copying a file may be seen half-written). A codec named like
    a built-in profile is refused: a profile id names one decoder.
    """

    def __init__(
        self,
        builtin: Mapping[str, Profile],
        codecs_dir: Path | None = None,
        *,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
    ) -> None:
        self.builtin = dict(builtin)
        self.codecs_dir = codecs_dir
        self._timeout_ms = timeout_ms
        self._max_memory_bytes = max_memory_bytes
        self._loaded: dict[Path, _Loaded] = {}
        self._good: dict[str, Profile] = {}  # the last good profile of each codec file's id
        self._merged: dict[str, Profile] = dict(self.builtin)
        self._rescan_lock = threading.Lock()
        self.problems: dict[Path, str] = {}  # codec files that failed to load, and why
        self._checked = float("-inf")  # monotonic time of the last look at the directory
        self._stamp: tuple[tuple[str, int, int], ...] = self.stamp()
        self.rescan()

    def __getitem__(self, profile_id: str) -> Profile:
        return self._merged[profile_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged)

    def __len__(self) -> int:
        return len(self._merged)

    def is_javascript(self, profile_id: str) -> bool:
        """Tell whether a profile comes from the codec directory."""
        return profile_id in self._merged and profile_id not in self.builtin

    def stamp(self) -> tuple[tuple[str, int, int], ...]:
        """The directory as (path, mtime, size) of itself, its vendor folders and files.

        Adding, removing or renaming a file changes its folder's mtime; rewriting one
        changes its own. A few dozen stat calls: cheap enough to take every few seconds.
        """
        if self.codecs_dir is None:
            return ()
        entries = []
        for path in (self.codecs_dir, *self.codecs_dir.glob("*"), *self.codecs_dir.glob("*/*")):
            try:
                info = path.stat()
            except OSError:
                continue
            entries.append((str(path), info.st_mtime_ns, info.st_size))
        return tuple(sorted(entries))

    def changed(self, *, min_interval_s: float = 2.0) -> bool:
        """Tell whether the directory changed since it was last looked at (then `rescan`);
        look at most every `min_interval_s` seconds."""
        now = time.monotonic()
        if self.codecs_dir is None or now - self._checked < min_interval_s:
            return False
        self._checked = now
        stamp = self.stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return True

    def rescan_if_changed(self, *, min_interval_s: float = 2.0) -> bool:
        """Rescan if the directory changed (see `changed`); tell whether it rescanned."""
        if not self.changed(min_interval_s=min_interval_s):
            return False
        self.rescan()
        return True

    def rescan(self) -> dict[Path, str]:
        """Pick up added, changed and removed codec files; return the files that failed."""
        with self._rescan_lock:
            if self.codecs_dir is None:
                return {}
            if not self.codecs_dir.is_dir():
                if self.codecs_dir not in self.problems:
                    log.warning("codec directory %s does not exist", self.codecs_dir)
                self.problems = {self.codecs_dir: f"{self.codecs_dir}: directory does not exist"}
                self._loaded, self._good, self._merged = {}, {}, dict(self.builtin)
                return self.problems
            js_files = sorted(self.codecs_dir.glob("*/*.js"))
            loaded: dict[Path, _Loaded] = {}
            problems: dict[Path, str] = {}
            for js_file in js_files:
                previous = self._loaded.get(js_file)
                entry = self._load(js_file, previous)
                loaded[js_file] = entry
                if entry.error is not None:
                    problems[js_file] = entry.error
                    if entry is not previous:  # warn once per content, not per rescan
                        log.warning("codec skipped: %s", entry.error)
            for yaml_file in sorted(self.codecs_dir.glob("*/*.yaml")):
                if yaml_file.with_suffix(".js") not in loaded:
                    problems[yaml_file] = f"{yaml_file}: no {yaml_file.with_suffix('.js').name}"
                    if yaml_file not in self.problems:
                        log.warning("codec skipped: %s", problems[yaml_file])
            ids = {f"{p.parent.name}/{p.stem}" for p in js_files}
            self._good = {pid: prof for pid, prof in self._good.items() if pid in ids}
            for entry in loaded.values():
                if entry.profile is not None:
                    self._good[entry.profile.id] = entry.profile
            self._loaded, self.problems = loaded, problems
            self._merged = {**self.builtin, **self._good}
            return problems

    def _load(self, js_file: Path, previous: _Loaded | None) -> _Loaded:
        yaml_file = js_file.with_suffix(".yaml")
        digest = hashlib.sha256()
        for path in (js_file, yaml_file):
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(b"\x00missing")
        if previous is not None and previous.digest == digest.hexdigest():
            return previous
        profile_id = f"{js_file.parent.name}/{js_file.stem}"
        try:
            if profile_id in self.builtin:
                raise CodecError(f"{js_file}: {profile_id} is a built-in profile")
            profile = load_profile(
                js_file, timeout_ms=self._timeout_ms, max_memory_bytes=self._max_memory_bytes
            )
        except CodecError as exc:
            return _Loaded(digest.hexdigest(), None, str(exc))
        log.info("codec %s loaded from %s (version %s)", profile.id, js_file, profile.version)
        return _Loaded(digest.hexdigest(), profile)
