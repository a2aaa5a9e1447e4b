"""Malformed payloads are refused with DecodeError, never decoded into wrong values."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decoders import CATALOG, DecodeError, Example, Profile

# (profile, what is wrong, f_port, payload hex); each must raise DecodeError.
MALFORMED: list[tuple[str, str, int, str]] = [
    ("elsys/ers-co2", "empty", 5, ""),
    ("elsys/ers-co2", "truncated temperature", 5, "0100"),
    ("elsys/ers-co2", "truncated light after good fields", 5, "0100e202290400"),
    ("elsys/ers-co2", "unknown type (debug)", 5, "3d01020304"),
    ("elsys/ers-co2", "trailing byte", 5, "0100e20229ff"),
    ("elsys/ers-co2", "port 0", 0, "0100e20229"),
    ("elsys/ers-co2", "port 224", 224, "0100e20229"),
    ("dragino/lht65", "empty", 2, ""),
    ("dragino/lht65", "truncated to 10 bytes", 2, "cbf60b0d0376010add7f"),
    ("dragino/lht65", "oversize, 12 bytes", 2, "cbf60b0d0376010add7fff00"),
    ("dragino/lht65", "wrong port", 3, "cbf60b0d0376010add7fff"),
    ("dragino/lht65", "poll message reply", 2, "cbf60b0d0376410add7fff"),
    ("dragino/lht65", "unknown external sensor 2", 2, "cbf60b0d0376020add7fff"),
    ("dragino/ldds75", "empty", 2, ""),
    ("dragino/ldds75", "truncated to 3 bytes", 2, "0cea0b"),
    ("dragino/ldds75", "oversize, 8 bytes", 2, "0cea0b05000000ff"),
    ("dragino/ldds75", "wrong port", 1, "0cea0b0500"),
    ("dragino/lsn50-v2", "empty", 2, ""),
    ("dragino/lsn50-v2", "truncated header", 2, "0b540000"),
    ("dragino/lsn50-v2", "mode 0 truncated to 10 bytes", 2, "0b54000000000000fc02"),
    ("dragino/lsn50-v2", "mode 0 oversize, 12 bytes", 2, "0b54000000000000fc020500"),
    ("dragino/lsn50-v2", "mode 8 in 11 bytes", 2, "0b5400fa0104207fff0000"),
    ("dragino/lsn50-v2", "mode 2, dead code in the codec", 2, "0b540000000008000000000000"),
    ("dragino/lsn50-v2", "unknown mode 9", 2, "0b54000000002400fc0205"),
    ("dragino/lsn50-v2", "status truncated", 5, "01ff0112000e"),
    ("dragino/lsn50-v2", "wrong port", 3, "0b54000000000000fc0205"),
    ("milesight-iot/em500-co2", "empty", 85, ""),
    ("milesight-iot/em500-co2", "truncated header", 85, "01755c03"),
    ("milesight-iot/em500-co2", "truncated temperature", 85, "01755c0367"),
    ("milesight-iot/em500-co2", "unknown channel (device info)", 85, "ff0bff"),
    ("milesight-iot/em500-co2", "trailing byte", 85, "01755c00"),
    ("milesight-iot/em500-co2", "wrong port", 1, "01755c"),
    ("milesight-iot/am319", "empty", 85, ""),
    ("milesight-iot/am319", "truncated pm2.5", 85, "0b7d20"),
    ("milesight-iot/am319", "unknown channel type", 85, "0b7e2000"),
    ("milesight-iot/am319", "wrong port", 2, "0b7d2000"),
    ("milesight-iot/vs133", "empty", 85, ""),
    ("milesight-iot/vs133", "truncated total", 85, "03d2480000"),
    ("milesight-iot/vs133", "line 5 does not exist", 85, "0fd248000000"),
    ("milesight-iot/vs133", "total on a period type", 85, "03cc48000000"),
    ("milesight-iot/vs133", "wrong port", 1, "03d248000000"),
    ("milesight-iot/em300-di", "empty", 85, ""),
    ("milesight-iot/em300-di", "truncated pulse counter", 85, "05c8000100"),
    ("milesight-iot/em300-di", "history of 12 bytes", 85, "20ce00000065e800640200102700"),
    ("milesight-iot/em300-di", "history with unknown mode", 85, "20ce00000065e80064030010270000"),
    ("milesight-iot/em300-di", "wrong port", 1, "01755c"),
    ("decentlab/dl-pm", "empty", 1, ""),
    ("decentlab/dl-pm", "truncated header", 1, "021b5000"),
    ("decentlab/dl-pm", "protocol version 3", 1, "031b5000010c25"),
    ("decentlab/dl-pm", "flag of a sensor it lacks", 1, "021b5000110c25"),
    ("decentlab/dl-pm", "truncated battery block", 1, "021b5000010c"),
    ("decentlab/dl-pm", "trailing byte", 1, "021b5000010c2500"),
    ("decentlab/dl-pm", "port 0", 0, "021b5000010c25"),
    ("decentlab/dl-sht35", "truncated SHT block", 1, "02030e000364a079"),
    ("decentlab/dl-sht35", "flag of a sensor it lacks", 1, "02030e00040c60"),
    ("decentlab/dl-iam", "truncated CO2 block", 1, "020bbd00108000"),
    ("decentlab/dl-iam", "flag of a sensor it lacks", 1, "020bbd00800b92"),
    ("browan/tbms100", "truncated to 7 bytes", 102, "01bb340400dc78"),
    ("browan/tbms100", "oversize, 9 bytes", 102, "01bb340400dc780100"),
    ("browan/tbms100", "wrong port", 1, "01bb340400dc7801"),
    ("netvox/r718a", "empty", 6, ""),
    ("netvox/r718a", "truncated to 10 bytes", 6, "010b012409ea1a900000"),
    ("netvox/r718a", "oversize, 12 bytes", 6, "010b012409ea1a9000000000"),
    ("netvox/r718a", "unknown device type", 6, "0102012409ea1a90000000"),
    ("netvox/r718a", "unknown report type", 6, "010b022409ea1a90000000"),
    ("netvox/r718a", "unknown command", 7, "830b000000000000000000"),
    ("netvox/r718a", "wrong port", 5, "010b012409ea1a90000000"),
    ("nwave/nps405", "empty parking status", 1, ""),
    ("nwave/nps405", "oversize parking status", 1, "9500"),
    ("nwave/nps405", "truncated heartbeat", 2, "00d3"),
    ("nwave/nps405", "oversize heartbeat", 2, "00d3d800590b00"),
    ("nwave/nps405", "truncated startup", 3, "02040902"),
    ("nwave/nps405", "empty debug", 6, ""),
    ("nwave/nps405", "truncated user registration", 10, "d11f3456"),
    ("nwave/nps405", "port the sensor does not use", 4, "95"),
]


@pytest.mark.parametrize(
    ("profile_id", "f_port", "payload"),
    [pytest.param(pid, port, hexs, id=f"{pid}: {what}") for pid, what, port, hexs in MALFORMED],
)
def test_malformed_payload_is_refused(profile_id: str, f_port: int, payload: str) -> None:
    with pytest.raises(DecodeError) as caught:
        CATALOG[profile_id].decode(f_port, bytes.fromhex(payload))
    assert str(caught.value)


def test_every_model_has_malformed_cases() -> None:
    assert {pid for pid, *_ in MALFORMED} == set(CATALOG)


PROFILES = list(CATALOG.values())
EXAMPLES = [(profile, example) for profile in PROFILES for example in profile.examples]


@pytest.mark.parametrize("profile", PROFILES, ids=lambda profile: profile.id)
@pytest.mark.parametrize("f_port", [0, 224, 255])
def test_no_application_port_is_refused(profile: Profile, f_port: int) -> None:
    for example in profile.examples:
        with pytest.raises(DecodeError):
            profile.decode(f_port, example.payload)


@pytest.mark.parametrize(
    ("profile", "example"),
    [
        pytest.param(profile, example, id=f"{profile.id}#{index}")
        for profile in PROFILES
        for index, example in enumerate(profile.examples)
    ],
)
def test_trailing_bytes_are_refused(profile: Profile, example: Example) -> None:
    with pytest.raises(DecodeError):
        profile.decode(example.f_port, example.payload + bytes(16))


def test_tbms100_empty_or_all_zero_frame_decodes_to_nothing() -> None:
    # The vendor codec returns {} (no data, no error) for these: nothing to store.
    decode = CATALOG["browan/tbms100"].decode
    assert decode(102, b"") == {}
    assert decode(102, bytes(8)) == {}


def test_ldds75_four_byte_frame_is_the_codec_no_sensor_answer() -> None:
    assert CATALOG["dragino/ldds75"].decode(2, bytes.fromhex("0e1c0b05")) == {
        "distance": "No Sensor"
    }


def decode_or_refuse(profile: Profile, f_port: int, payload: bytes) -> None:
    """Decode and check the outcome: JSON-like data, or a DecodeError with a message."""
    try:
        data: Any = profile.decode(f_port, payload)
    except DecodeError as exc:
        assert str(exc)
        return
    assert isinstance(data, dict)
    json.dumps(data, allow_nan=False)  # plain JSON values only, no NaN or bytes


@settings(max_examples=1500, deadline=None)
@given(
    profile=st.sampled_from(PROFILES),
    f_port=st.integers(0, 255),
    payload=st.binary(max_size=80),
)
def test_random_bytes_decode_or_raise_decode_error(
    profile: Profile, f_port: int, payload: bytes
) -> None:
    decode_or_refuse(profile, f_port, payload)


@st.composite
def mutated_examples(draw: st.DrawFn) -> tuple[Profile, int, bytes]:
    profile, example = draw(st.sampled_from(EXAMPLES))
    payload = bytearray(example.payload)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["cut", "append", "flip"]))
        if action == "cut":
            del payload[draw(st.integers(0, len(payload))) :]
        elif action == "append":
            payload += draw(st.binary(min_size=1, max_size=8))
        elif payload:
            at = draw(st.integers(0, len(payload) - 1))
            payload[at] ^= 1 << draw(st.integers(0, 7))
    ports = sorted({e.f_port for e in profile.examples})
    return profile, draw(st.sampled_from(ports)), bytes(payload)


@settings(max_examples=1500, deadline=None)
@given(case=mutated_examples())
def test_mutated_examples_decode_or_raise_decode_error(case: tuple[Profile, int, bytes]) -> None:
    decode_or_refuse(*case)
