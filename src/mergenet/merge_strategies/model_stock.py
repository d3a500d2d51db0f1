"""Model stock: interpolate between the base and the average of the contributions by a ratio
set from the angle between the task vectors (mergekit ``model_stock``, arXiv:2403.19522).
Needs at least two contributions; ignores weights."""

from __future__ import annotations

from mergenet.merge_strategies.space import ParamSpace, b
from mergenet.merge_strategies.strategy import Strategy

STRATEGY = Strategy(
    name="model_stock",
    mergekit_method="model_stock",
    space=ParamSpace((b("filter_wise", False, "one ratio per row instead of per tensor"),)),
    description="Base/average interpolation from the geometry of the task vectors.",
    uses_weights=False,
    min_deltas=2,
)
