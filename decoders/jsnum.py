"""JavaScript number semantics that the vendor codecs rely on, reproduced exactly.

Vendor codecs run as JavaScript, where every number is an IEEE double and the decoded
object reaches us as JSON: an integral number is written without a fraction, so Python
must give an `int` where JavaScript yields e.g. `22`, and a `float` where it yields `22.6`.
Divisions of integers agree bit for bit between the languages (both round the exact
quotient once), as long as the codec's order of operations is kept.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

JsNumber = int | float


def js_number(value: float) -> JsNumber:
    """Return the value as JSON carries a JavaScript number: integral values become int."""
    if isinstance(value, int):
        return value
    if not math.isfinite(value) or not value.is_integer() or abs(value) >= 1e21:
        return value  # JSON writes these with a fraction or an exponent: a float
    if abs(value) <= 2**53:
        return int(value)  # also turns -0.0 into 0, as JSON.stringify(-0) gives "0"
    # Above 2**53 JavaScript prints the shortest round-trip digits padded with zeros
    # (2**64 prints as 18446744073709552000), so the integer JSON carries is that one.
    return int(Decimal(repr(value)))


def to_fixed(value: float, digits: int) -> JsNumber:
    """Compute JavaScript `parseFloat(value.toFixed(digits))` exactly.

    toFixed rounds the exact binary value of the double half away from zero (the spec
    picks the larger n on a tie, after taking the sign off), unlike Python's round(),
    which rounds ties to even: (0.125).toFixed(2) is "0.13" but round(0.125, 2) is 0.12.
    """
    if not math.isfinite(value) or abs(value) >= 1e21:
        return js_number(value)  # toFixed falls back to ToString; parseFloat gives it back
    exact = Decimal(value)  # the double's exact binary value, no decimal rounding yet
    fixed = exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return js_number(float(fixed))


def js_string(value: float) -> str:
    """Format a number as JavaScript `String(value)` does."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    # repr() gives the shortest digits that round-trip, the same digits ECMAScript picks;
    # only the layout differs: JavaScript keeps plain notation while the leading digit's
    # exponent is between -6 and 20 (1e-6 is "0.000001", 1e21 is "1e+21").
    digits = Decimal(repr(float(value)))
    if -6 <= digits.adjusted() <= 20:
        text = format(digits, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    sign, coefficient, exponent = digits.normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = "".join(map(str, coefficient))
    power = exponent + len(mantissa) - 1
    body = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
    return f"{'-' if sign else ''}{body}e{'+' if power >= 0 else '-'}{abs(power)}"


def int32(value: int) -> int:
    """Wrap an integer to signed 32 bits, as the result of JavaScript's `|`, `<<` and `&`."""
    return ((value + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000
