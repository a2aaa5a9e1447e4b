"""The one rule from an uplink to its decode status and readings, as the ingest and the
re-decode apply it (no services)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

import decoders
from datahub.domain import City, DecodeStatus, Uplink
from datahub.ingest.interpret import Interpretation, interpret
from datahub.storage.devices import RegistryEntry
from datahub.storage.readings import ReadingRow

AT = datetime(2026, 11, 20, 12, tzinfo=UTC)
PROFILE = "acme/thermo"


def profile(decode: object) -> decoders.Profile:
    base = decoders.get_profile("dragino/lht65")
    return dataclasses.replace(
        base,
        id=PROFILE,
        vendor="acme",
        model="thermo",
        decode=decode,
        decode_many=None,
        mappings=(
            decoders.MetricMapping(("t",), "temperature", decoders.MetricKind.GAUGE),
            decoders.MetricMapping(("rh",), "relative_humidity", decoders.MetricKind.GAUGE),
        ),
    )


def refuse(f_port: int, payload: bytes) -> dict[str, object]:
    raise decoders.DecodeError("too short")


CATALOG = {PROFILE: profile(lambda f_port, payload: {"t": payload[0] / 10, "rh": "wet"})}
ENTRY = RegistryEntry(device_id=7, dev_eui="0000000000000001", profile=PROFILE, city=City.DORTMUND)


def uplink(f_port: int | None = 2, payload: bytes = b"\xd2") -> Uplink:
    return Uplink("0000000000000001", City.DORTMUND, "s", AT, f_port, 1, payload, b"k" * 16)


CASES = {
    "unknown device": (uplink(), None, CATALOG, Interpretation(None, DecodeStatus.UNKNOWN_DEVICE)),
    "profile not in the catalog": (
        uplink(),
        dataclasses.replace(ENTRY, profile="acme/gone"),
        CATALOG,
        Interpretation(7, DecodeStatus.NO_DECODER),
    ),
    "decoded, a value skipped": (
        uplink(),
        ENTRY,
        CATALOG,
        Interpretation(
            7,
            DecodeStatus.DECODED,
            decoder=f"{PROFILE}@1#",
            error="rh: not a number ('wet')",
            readings=[ReadingRow(AT, 7, "temperature", 21.0)],
            skipped=1,
        ),
    ),
    "no application payload": (
        uplink(f_port=0),
        ENTRY,
        CATALOG,
        Interpretation(
            7, DecodeStatus.FAILED, decoder=f"{PROFILE}@1#", error="f_port 0: no application"
        ),
    ),
    "the decoder refuses": (
        uplink(),
        ENTRY,
        {PROFILE: profile(refuse)},
        Interpretation(7, DecodeStatus.FAILED, decoder=f"{PROFILE}@1#", error=f"{PROFILE}: too"),
    ),
}


@pytest.mark.parametrize(("up", "entry", "catalog", "expected"), CASES.values(), ids=list(CASES))
def test_interpret(
    up: Uplink,
    entry: RegistryEntry | None,
    catalog: dict[str, decoders.Profile],
    expected: Interpretation,
) -> None:
    (result,) = interpret([up], [entry], catalog)
    assert (result.device_id, result.status) == (expected.device_id, expected.status)
    assert (result.decoder or "").startswith(expected.decoder or "")
    assert (result.error or "").startswith(expected.error or "")
    assert list(result.readings) == list(expected.readings)
    assert result.skipped == expected.skipped
    assert (result.failure is not None) == (expected.status is DecodeStatus.FAILED)
