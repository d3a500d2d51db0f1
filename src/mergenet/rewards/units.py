"""Token amounts: floats from the reward formula become exact integer base units (18 decimals).

The ledger, the Merkle leaves and the contracts all use integer base units; the float reward
is converted once, rounding down, so the sum of what is paid never exceeds what was computed.
"""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal

DECIMALS = 18
UNIT = 10**DECIMALS


def to_base_units(tokens: float) -> int:
    """Whole base units in ``tokens`` (rounded down); rejects negative or non-finite input."""
    if not math.isfinite(tokens) or tokens < 0:
        raise ValueError(f"a token amount must be finite and >= 0, got {tokens!r}")
    return int((Decimal(repr(tokens)) * UNIT).to_integral_value(rounding=ROUND_DOWN))


def format_tokens(base_units: int) -> str:
    """``1500000000000000000`` → ``"1.5"`` (exact, no float rounding)."""
    whole, frac = divmod(int(base_units), UNIT)
    if not frac:
        return str(whole)
    return f"{whole}.{str(frac).rjust(DECIMALS, '0').rstrip('0')}"
