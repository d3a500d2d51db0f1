"""Spherical interpolation: ``slerp`` between the base and one contribution (mergekit ``slerp``,
``t`` = 0 is the base), and ``multislerp`` for any number of contributions (spherical
weighted mean of the task vectors around the base)."""

from __future__ import annotations

from mergenet.merge_strategies.space import ParamSpace, b, f
from mergenet.merge_strategies.strategy import Strategy

SLERP = Strategy(
    name="slerp",
    mergekit_method="slerp",
    space=ParamSpace((f("t", 0.5, 0.0, 1.0, "interpolation factor (0 = base)"),)),
    description="Spherical interpolation between the base and one contribution.",
    uses_weights=False,
    min_deltas=1,
    max_deltas=1,
)

MULTISLERP = Strategy(
    name="multislerp",
    mergekit_method="multislerp",
    space=ParamSpace((b("normalize_weights", True, "normalise weights to sum to 1"),)),
    description="Spherical weighted mean of several contributions around the base.",
)
