"""What the catalog makes of an uplink: its device, decode status, decoder and readings.

The one rule both the ingest (`Pipeline.prepare`) and the re-decode (ingest/redecode.py)
apply, so that a re-decode gives what the ingest would give now, by construction:

    no registry entry for the DevEUI    unknown_device, no device, no readings
    the entry's profile not in catalog  no_decoder, no readings
    the decoder refuses the payload     failed, with the decoder and its reason
    decoded                             decoded, with the decoder; the mapping's readings at
                                        the uplink's received_at, and the values it had to
                                        skip as the error ("path: why; …"), or none

Pure: uplinks, their registry entries and the catalog in, results out. An uplink is
anything with a DevEUI, f_port, payload and received_at: one just received, or one stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import decoders
from datahub.domain import DecodeStatus
from datahub.errors import DropError
from datahub.ingest import decode, normalize
from datahub.storage.devices import RegistryEntry
from datahub.storage.readings import ReadingRow


class Payload(Protocol):
    """An uplink as decoding needs it."""

    @property
    def dev_eui(self) -> str: ...

    @property
    def f_port(self) -> int | None: ...

    @property
    def payload(self) -> bytes: ...

    @property
    def received_at(self) -> datetime: ...


@dataclass(slots=True)  # not frozen: one per uplink ingested, built 5x faster
class Interpretation:
    """What the catalog made of one uplink."""

    device_id: int | None
    status: DecodeStatus
    decoder: str | None = None
    error: str | None = None  # the decoder's refusal, or the values the mapping skipped
    readings: Sequence[ReadingRow] = ()  # without decoder ids: the store resolves them
    skipped: int = 0  # decoded values the mapping could not use
    failure: DropError | None = None  # the decoder's refusal, for a dead letter


def interpret(
    uplinks: Sequence[Payload],
    entries: Sequence[RegistryEntry | None],
    catalog: Mapping[str, decoders.Profile],
) -> list[Interpretation]:
    """Interpret each uplink with its registry entry (None: unknown DevEUI).

    The payloads of the batch are decoded together (`decode.decode_uplinks`): a JavaScript
    codec gets those of its profile in one call.
    """
    results: list[Interpretation] = []
    decodable: list[tuple[int, Payload, int, decoders.Profile]] = []
    for uplink, entry in zip(uplinks, entries, strict=True):
        if entry is None:
            results.append(Interpretation(None, DecodeStatus.UNKNOWN_DEVICE))
            continue
        profile = catalog.get(entry.profile)
        if profile is None:
            results.append(Interpretation(entry.device_id, DecodeStatus.NO_DECODER))
            continue
        decodable.append((len(results), uplink, entry.device_id, profile))
        results.append(Interpretation(entry.device_id, DecodeStatus.DECODED))

    outcomes = decode.decode_uplinks([(p, u.f_port, u.payload) for _, u, _, p in decodable])
    for (index, uplink, device_id, profile), outcome in zip(decodable, outcomes, strict=True):
        result = results[index]
        if isinstance(outcome, DropError):
            result.status = DecodeStatus.FAILED
            result.decoder = decode.decoder_name(profile)
            result.error = outcome.detail
            result.failure = outcome
            continue
        normalized = normalize.to_readings(
            outcome.data, profile.mappings, time=uplink.received_at, dev_eui=uplink.dev_eui
        )
        result.decoder = outcome.decoder
        result.error = "; ".join(normalized.skipped) or None
        result.skipped = len(normalized.skipped)
        result.readings = [
            ReadingRow(r.time, device_id, r.metric, r.value) for r in normalized.readings
        ]
    return results
