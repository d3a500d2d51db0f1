"""Every other mergekit method, exposed through mergenet's registry.

mergekit 0.1.5 registers 20 methods; the ones the loop cares about have their own modules
with curated spaces (and fused kernels). This module wraps the rest — and anything a future
mergekit adds — by reading each method's spec: its parameters become the space (curated
bounds below where we know the meaning; booleans and defaulted numbers otherwise), its input
contract becomes the allowed number of deltas, and the merge runs mergekit's implementation
tensor by tensor.
"""

from __future__ import annotations

from typing import Any

from mergenet.merge_strategies.space import Param, ParamSpace, b, f, i
from mergenet.merge_strategies.strategy import Strategy

# Curated search ranges for mergekit parameters whose meaning we know.
_CURATED: dict[str, dict[str, Param]] = {
    "nuslerp": {
        "nuslerp_row_wise": b("nuslerp_row_wise", False, "slerp row vectors instead of columns"),
        "nuslerp_flatten": b("nuslerp_flatten", True, "slerp whole flattened tensors"),
    },
    "karcher": {
        "max_iter": i("max_iter", 10, 1, 50, "Karcher mean iterations"),
        "tol": f("tol", 1e-5, 1e-8, 1e-2, "convergence tolerance", log=True),
    },
    "sce": {
        "select_topk": f("select_topk", 1.0, 0.01, 1.0, "fraction of high-variance entries kept")
    },
    "ram": {"epsilon": f("epsilon", 1e-5, 1e-8, 1e-2, "threshold for a changed entry", log=True)},
    "ramplus_tl": {
        "r": f("r", 0.1, 0.0, 1.0, "overlap-aware rescaling ratio"),
        "alpha": f("alpha", 0.2, 0.0, 1.0, "rescaling strength"),
        "epsilon": f("epsilon", 1e-5, 1e-8, 1e-2, "threshold for a changed entry", log=True),
    },
    "nearswap": {"t": f("t", 1e-3, 1e-6, 1.0, "similarity threshold", log=True)},
}
_PINNED = {"int8_mask", "scale"}  # memory-layout or per-input knobs that are not search dimensions


def _generic_param(spec: Any) -> Param | None:
    if spec.required or spec.name in _PINNED or spec.name == "weight":
        return None
    value_type, default = spec.value_type, spec.default
    if value_type is bool:
        return b(spec.name, bool(default))
    if value_type is int and isinstance(default, int):
        return i(spec.name, default, 0, max(1, 2 * default))
    if value_type is float and isinstance(default, float | int):
        return f(spec.name, float(default), 0.0, max(1.0, 2 * float(default)))
    return None


def strategy_from_mergekit(method: Any) -> Strategy:
    """A Strategy running mergekit ``method`` tensor by tensor, with a space from its spec."""
    from mergekit.merge_methods.base import BasePolicy

    spec = method.spec
    curated = _CURATED.get(spec.name, {})
    params = []
    for p in spec.parameters:
        param = curated.get(p.name) or _generic_param(p)
        if param is not None:
            params.append(param)
    contract = spec.contract
    base_input = contract.base in (BasePolicy.REQUIRED, BasePolicy.OPTIONAL)
    lo, hi = contract.min_inputs, contract.max_inputs
    if base_input:
        lo, hi = lo - 1, (hi - 1 if hi is not None else None)
        if contract.min_non_base is not None:
            lo = max(lo, contract.min_non_base)
        if contract.max_non_base is not None:
            hi = contract.max_non_base if hi is None else min(hi, contract.max_non_base)
    return Strategy(
        name=spec.name,
        mergekit_method=spec.name,
        space=ParamSpace(tuple(params)),
        description=spec.pretty_name or spec.name,
        uses_weights=any(p.name == "weight" for p in spec.parameters),
        base_input=base_input,
        min_deltas=max(1, lo),
        max_deltas=hi,
    )
