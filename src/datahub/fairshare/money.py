"""Money in integer cents: rounding once, and splitting a whole exactly by weights.

No floats anywhere: a price is integer cents per million observations, so an exact value
is an integer count of millionths of a cent, and only a total is ever rounded.
"""

from __future__ import annotations

from collections.abc import Sequence

MILLION = 1_000_000
BASIS_POINTS = 10_000


def round_half_up(numerator: int, denominator: int) -> int:
    """Return numerator / denominator rounded to the nearest integer, halves up (both ≥ 0)."""
    if numerator < 0 or denominator <= 0:
        raise ValueError(f"cannot round {numerator}/{denominator}: expected n >= 0, d > 0")
    return (2 * numerator + denominator) // (2 * denominator)


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` into integer parts proportional to `weights`, summing exactly to it.

    Every part gets the floor of its exact share; the cents left over go one each to
    the parts with the largest remainders, ties to the earlier part. So each part is
    within one cent of its exact share, and the same input always splits the same way.
    All weights zero splits nothing: `total` must then be 0.
    """
    if total < 0 or any(w < 0 for w in weights):
        raise ValueError("largest_remainder takes a total and weights that are not negative")
    whole = sum(weights)
    if whole == 0:
        if total != 0:
            raise ValueError(f"cannot split {total} by weights that are all zero")
        return [0] * len(weights)
    parts = [total * w // whole for w in weights]
    remainders = [total * w % whole for w in weights]
    left = total - sum(parts)
    # Largest remainder first; among equal remainders, the earlier part.
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        parts[i] += 1
    return parts


def split_fee(cents: int, fee_basis_points: int) -> tuple[int, int]:
    """Split `cents` into (platform fee, supplier share) by the fee in basis points."""
    if not 0 <= fee_basis_points <= BASIS_POINTS:
        raise ValueError(f"a fee of {fee_basis_points} basis points is not within 0..10000")
    fee, share = largest_remainder(cents, [fee_basis_points, BASIS_POINTS - fee_basis_points])
    return fee, share


def format_cents(cents: int) -> str:
    """Render cents as a decimal amount, e.g. 145062 -> "1450.62"; no floats."""
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    return f"{sign}{whole}.{rest:02d}"
