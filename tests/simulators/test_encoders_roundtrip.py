"""Encoders and decoders prove each other: decode(encode(quantize(x))) gives quantize(x).

The decoders are those of the demo's merged catalog: the built-in profiles and the
JavaScript codecs of deploy/codecs, run in V8 as the ingest runs them.
"""

from __future__ import annotations

from typing import Any

import pytest
from democatalog import demo_catalog
from hypothesis import given, settings
from hypothesis import strategies as st

from datahub.catalog import mismatch
from simulators.encoders import ENCODERS, Encoder, FieldPath, Steps

ENCODER_PARAMS = [pytest.param(encoder, id=profile_id) for profile_id, encoder in ENCODERS.items()]

# Plausible readings and wild ones (beyond what a payload holds), to exercise the clamping.
readings = st.one_of(
    st.floats(-60, 5000, allow_nan=False),
    st.floats(-1e12, 1e12, allow_nan=False),
    st.integers(0, 2**33),
    st.booleans(),
)


def field_values(encoder: Encoder) -> st.SearchStrategy[dict[FieldPath, float]]:
    return st.fixed_dictionaries({path: readings for path in encoder.fields})


def lookup(data: Any, path: FieldPath) -> Any:
    for key in path:
        data = data[key]
    return data


def assert_round_trip(encoder: Encoder, values: dict[FieldPath, float]) -> None:
    quantized = encoder.quantize(values)
    f_port, payload = encoder.encode(quantized)
    decoded = demo_catalog()[encoder.profile_id].decode(f_port, payload)
    for path in encoder.fields:
        got, wanted = lookup(decoded, path), quantized[path]
        assert got == wanted, path
        assert type(got) is type(wanted), path
    assert encoder.quantize(quantized) == quantized  # quantizing twice changes nothing


def test_every_encoder_has_a_profile_and_encodes_mapped_fields() -> None:
    assert set(ENCODERS) == {
        "elsys/ers-co2",
        "dragino/lht65",
        "milesight-iot/em500-co2",
        "milesight-iot/am319",
        "nwave/nps405",
        "dragino/ldds75",
        "milesight-iot/vs133",
        "milesight-iot/em300-di",
        "datahub/example-thermometer",
    }
    for profile_id, encoder in ENCODERS.items():
        assert encoder.profile_id == profile_id
        mapped = {mapping.path for mapping in demo_catalog()[profile_id].mappings}
        assert set(encoder.fields) <= mapped


@pytest.mark.parametrize("encoder", ENCODER_PARAMS)
def test_round_trip(encoder: Encoder) -> None:
    @settings(max_examples=300, deadline=None)
    @given(values=field_values(encoder))
    def round_trip(values: dict[FieldPath, float]) -> None:
        assert_round_trip(encoder, values)

    round_trip()


@pytest.mark.parametrize("encoder", ENCODER_PARAMS)
def test_quantize_picks_the_nearest_step_in_range(encoder: Encoder) -> None:
    @settings(max_examples=200, deadline=None)
    @given(data=st.data())
    def nearest(data: st.DataObject) -> None:
        for path, quantity in encoder.quantities.items():
            if not isinstance(quantity, Steps):
                continue
            low, high = quantity.low / quantity.divisor, quantity.high / quantity.divisor
            value = data.draw(st.floats(low, high), label="/".join(path))
            quantized = encoder.quantize({**dict.fromkeys(encoder.fields, 0.0), path: value})
            assert abs(quantized[path] - value) <= 0.5 / quantity.divisor + 1e-9 * abs(value)

    nearest()


@pytest.mark.parametrize("encoder", ENCODER_PARAMS)
def test_range_ends_round_trip(encoder: Encoder) -> None:
    for end in ("low", "high"):
        values: dict[FieldPath, float] = {}
        for path, quantity in encoder.quantities.items():
            if isinstance(quantity, Steps):
                values[path] = getattr(quantity, end) / quantity.divisor
            else:
                values[path] = 1.0 if end == "high" else 0.0
        assert_round_trip(encoder, values)


def test_lht65_two_decimals_survive_the_codec_to_fixed_everywhere() -> None:
    # The LHT65 decoder passes temperatures through parseFloat(x.toFixed(2)); every raw
    # value of the field must come back as the plain quotient the encoder assumes.
    encoder = ENCODERS["dragino/lht65"]
    decode = demo_catalog()["dragino/lht65"].decode
    base = {path: 20.0 for path in encoder.fields}
    for raw in range(-5500, 12501, 7):
        values = {**base, ("TempC_DS",): raw / 100, ("TempC_SHT",): raw / 100}
        decoded = decode(*encoder.encode(values))
        assert (
            decoded["TempC_DS"] == decoded["TempC_SHT"] == encoder.quantize(values)[("TempC_DS",)]
        )


def test_nps405_occupancy_is_a_boolean_state() -> None:
    encoder = ENCODERS["nwave/nps405"]
    assert encoder.quantize({("occupied",): 0.7}) == {("occupied",): True}
    assert encoder.quantize({("occupied",): 0.2}) == {("occupied",): False}
    f_port, payload = encoder.encode({("occupied",): True})
    assert f_port == 1
    assert demo_catalog()["nwave/nps405"].decode(f_port, payload)["occupied"] is True


def test_example_thermometer_is_decoded_by_its_javascript_codec() -> None:
    assert demo_catalog().is_javascript("datahub/example-thermometer")


def test_example_thermometer_writes_its_codecs_own_examples() -> None:
    # The codec's YAML examples, read backwards: their expected values encode to their bytes.
    encoder = ENCODERS["datahub/example-thermometer"]
    profile = demo_catalog()["datahub/example-thermometer"]
    assert profile.examples
    for example in profile.examples:
        values = {path: lookup(example.expected, path) for path in encoder.fields}
        assert encoder.quantize(values) == values
        assert encoder.encode(values) == (example.f_port, example.payload)


def test_example_thermometer_values_keep_their_json_types_through_v8() -> None:
    # Whole numbers come back from JavaScript as integers (3, not 3.0), as quantize says.
    encoder = ENCODERS["datahub/example-thermometer"]
    values: dict[FieldPath, float] = {
        ("temperature",): -3.0,
        ("humidity",): 80.0,
        ("battery",): 2.5,
    }
    quantized = encoder.quantize(values)
    assert quantized == {("temperature",): -3, ("humidity",): 80, ("battery",): 2.5}
    assert [type(value) for value in quantized.values()] == [int, int, float]
    decoded = demo_catalog()["datahub/example-thermometer"].decode(*encoder.encode(quantized))
    expected = {field_name: quantized[(field_name,)] for field_name in decoded}
    assert mismatch(decoded, expected) is None


def test_missing_field_is_named() -> None:
    with pytest.raises(KeyError, match="line_1/total_out"):
        ENCODERS["milesight-iot/vs133"].encode({("line_1", "total_in"): 5})


def test_non_finite_value_is_refused() -> None:
    with pytest.raises(ValueError, match="nan"):
        ENCODERS["elsys/ers-co2"].quantize(
            {path: float("nan") for path in ENCODERS["elsys/ers-co2"].fields}
        )
