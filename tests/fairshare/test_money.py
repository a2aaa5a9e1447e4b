"""Rounding and largest-remainder splits, table-driven and as properties."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datahub.fairshare.money import largest_remainder, round_half_up, split_fee


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        pytest.param(0, 1_000_000, 0, id="zero"),
        pytest.param(499_999, 1_000_000, 0, id="just-below-half-down"),
        pytest.param(500_000, 1_000_000, 1, id="half-up"),
        pytest.param(1_500_000, 1_000_000, 2, id="one-and-a-half-up"),
        pytest.param(2_499_999, 1_000_000, 2, id="below-half"),
        pytest.param(7, 7, 1, id="whole"),
    ],
)
def test_round_half_up(numerator: int, denominator: int, expected: int) -> None:
    assert round_half_up(numerator, denominator) == expected


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        pytest.param(100, [1, 1, 1], [34, 33, 33], id="thirds-tie-to-first"),
        pytest.param(2, [1, 1, 1], [1, 1, 0], id="ties-in-order"),
        pytest.param(10, [0, 5, 5], [0, 5, 5], id="zero-weight-gets-nothing"),
        pytest.param(0, [0, 0], [0, 0], id="nothing-by-nothing"),
        pytest.param(0, [], [], id="no-parts"),
        pytest.param(101, [2, 1], [67, 34], id="larger-remainder-wins"),
        pytest.param(5, [1_000_000_000_000, 1], [5, 0], id="huge-weight"),
    ],
)
def test_largest_remainder(total: int, weights: list[int], expected: list[int]) -> None:
    assert largest_remainder(total, weights) == expected


def test_largest_remainder_refuses_a_total_without_weights() -> None:
    with pytest.raises(ValueError, match="all zero"):
        largest_remainder(3, [0, 0])


@pytest.mark.parametrize(
    ("cents", "fee_bp", "expected"),
    [
        pytest.param(1000, 1500, (150, 850), id="fifteen-percent"),
        pytest.param(1, 5000, (1, 0), id="half-a-cent-to-the-fee-on-a-tie"),
        pytest.param(3, 3333, (1, 2), id="a-third"),
        pytest.param(999, 0, (0, 999), id="no-fee"),
        pytest.param(999, 10000, (999, 0), id="all-fee"),
    ],
)
def test_split_fee(cents: int, fee_bp: int, expected: tuple[int, int]) -> None:
    assert split_fee(cents, fee_bp) == expected


@given(
    total=st.integers(0, 10**12),
    weights=st.lists(st.integers(0, 10**15), min_size=1, max_size=30).filter(any),
)
def test_largest_remainder_sums_and_stays_within_a_cent(total: int, weights: list[int]) -> None:
    parts = largest_remainder(total, weights)
    assert sum(parts) == total
    whole = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        exact = Fraction(total * weight, whole)
        assert abs(part - exact) < 1
        assert part >= 0


@given(total=st.integers(0, 10**9), weights=st.lists(st.integers(1, 10**6), min_size=1))
def test_largest_remainder_is_deterministic_and_monotone(total: int, weights: list[int]) -> None:
    parts = largest_remainder(total, weights)
    assert parts == largest_remainder(total, list(weights))
    # A larger weight never gets fewer cents than a smaller one.
    for i, wi in enumerate(weights):
        for j, wj in enumerate(weights):
            if wi > wj:
                assert parts[i] >= parts[j]


@given(cents=st.integers(0, 10**12), fee_bp=st.integers(0, 10_000))
def test_split_fee_conserves(cents: int, fee_bp: int) -> None:
    fee, share = split_fee(cents, fee_bp)
    assert fee + share == cents
    assert abs(fee - Fraction(cents * fee_bp, 10_000)) < 1
