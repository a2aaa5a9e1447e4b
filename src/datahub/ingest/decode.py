"""Decode stage: a device's payload through its catalog profile."""

from __future__ import annotations

import functools
import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import decoders
from datahub.errors import DecodeFailure


@dataclass(slots=True)  # not frozen: one per uplink ingested, built 5x faster
class Decoded:
    """The vendor's data object, and the decoder that produced it."""

    data: dict[str, Any]
    decoder: str


def decoder_name(profile: decoders.Profile) -> str:
    """Name a profile's decoder and mapping, as recorded with stored uplinks and readings.

    `vendor/model@version#digest`: the version names the decoder's code (bumped by hand
    when its output changes); the digest, of what the mapping does to the values (paths,
    metrics, scales), changes by itself when the mapping does.
    """
    return f"{profile.id}@{profile.version}#{_mapping_digest(profile.mappings)}"


@functools.cache
def _mapping_digest(mappings: tuple[decoders.MetricMapping, ...]) -> str:
    text = repr([(m.path, m.metric, float(m.scale)) for m in mappings])
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def decode_uplink(profile: decoders.Profile, *, f_port: int | None, payload: bytes) -> Decoded:
    """Decode one payload; a decoder's rejection becomes a DecodeFailure."""
    if f_port is None or f_port == 0:
        raise DecodeFailure(f"f_port {f_port}: no application payload to decode")
    try:
        data = profile.decode(f_port, payload)
    except decoders.DecodeError as exc:
        raise DecodeFailure(f"{profile.id}: {exc}") from exc
    except Exception as exc:  # a decoder bug must not stop the ingest
        raise DecodeFailure(f"{profile.id}: decoder crashed: {exc!r}") from exc
    return Decoded(data=data, decoder=decoder_name(profile))


def decode_uplinks(
    items: Sequence[tuple[decoders.Profile, int | None, bytes]],
) -> list[Decoded | DecodeFailure]:
    """Decode (profile, f_port, payload) triples: what `decode_uplink` returns or raises, each.

    A profile that decodes in batches (`Profile.decode_many`) gets its payloads in one call.
    """
    results: dict[int, Decoded | DecodeFailure] = {}
    batched: dict[str, list[int]] = defaultdict(list)
    for i, (profile, f_port, payload) in enumerate(items):
        if profile.decode_many is not None and f_port:
            batched[profile.id].append(i)
            continue
        try:
            results[i] = decode_uplink(profile, f_port=f_port, payload=payload)
        except DecodeFailure as exc:
            results[i] = exc
    for indices in batched.values():
        profile = items[indices[0]][0]
        assert profile.decode_many is not None
        calls = [(items[i][1] or 0, items[i][2]) for i in indices]
        try:
            outcomes = profile.decode_many(calls)
        except Exception as exc:  # a decoder bug must not stop the ingest
            for i in indices:
                results[i] = DecodeFailure(f"{profile.id}: decoder crashed: {exc!r}")
            continue
        name = decoder_name(profile)
        for i, outcome in zip(indices, outcomes, strict=True):
            if isinstance(outcome, decoders.DecodeError):
                results[i] = DecodeFailure(f"{profile.id}: {outcome}")
            else:
                results[i] = Decoded(data=outcome, decoder=name)
    return [results[i] for i in range(len(items))]
