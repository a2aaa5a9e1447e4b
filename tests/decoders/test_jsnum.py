"""JavaScript number semantics: the cases where Python's own arithmetic would differ."""

from __future__ import annotations

import pytest

from decoders.jsnum import int32, js_number, js_string, to_fixed


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (22.0, 22),
        (22.6, 22.6),
        (-0.0, 0),
        (3, 3),
        (2.0**64, 18446744073709552000),  # what JSON.stringify prints, digits padded
        (1e21, 1e21),  # printed with an exponent: a float after JSON
    ],
)
def test_js_number_gives_json_types(value: float, expected: int | float) -> None:
    result = js_number(value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (0.125, 2, 0.13),  # an exact tie rounds up; Python's round() gives 0.12
        (2.5, 0, 3),  # round() gives 2
        (-2.5, 0, -3),  # ties go away from zero once the sign is off
        (1.005, 2, 1),  # 1.005 is 1.00499999999999989... in binary
        (2.675, 2, 2.67),  # likewise below the tie
        (-0.001, 2, 0),  # "-0.00" parses to -0, which JSON writes as 0
        (28.29, 2, 28.29),
        (2829 / 100, 2, 28.29),
    ],
)
def test_to_fixed_rounds_the_binary_value_half_up(
    value: float, digits: int, expected: int | float
) -> None:
    result = to_fixed(value, digits)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3.2, "3.2"),
        (3.0, "3"),
        (0.0, "0"),
        (-12.7, "-12.7"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e21, "1.5e+21"),
        (123456789012345680000.0, "123456789012345680000"),
    ],
)
def test_js_string_formats_as_javascript(value: float, expected: str) -> None:
    assert js_string(value) == expected


def test_int32_wraps_like_javascript_bitwise_results() -> None:
    assert int32(0xDC << 24) == -(0x24 << 24)
    assert int32(0x7FFF_FFFF) == 0x7FFF_FFFF
    assert int32(0xFFFF_FFFF) == -1
