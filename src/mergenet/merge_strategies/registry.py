"""The registry of merge strategies: mergenet's curated modules plus every mergekit method.

``get(name)`` and ``names()`` are what the evolution loop, the recipes and the CLI use. Our
own methods (``consensus``, ``expo``) are also registered with mergekit on first use, so
each strategy has a mergekit method of the same meaning.
"""

from __future__ import annotations

from functools import cache

from mergenet.merge_strategies import (
    breadcrumbs,
    consensus,
    dare,
    della,
    expo,
    iso,
    linear,
    lines,
    model_stock,
    pcb,
    slerp,
    tall,
    task_arithmetic,
    ties,
    tsv,
)
from mergenet.merge_strategies.mergekit_methods import strategy_from_mergekit
from mergenet.merge_strategies.strategy import Strategy


@cache
def _strategies() -> dict[str, Strategy]:
    from mergekit.merge_methods import registered_methods

    from mergenet.merge_strategies.mergekit_plugin import ensure_registered

    ensure_registered()
    curated = [
        linear.STRATEGY,
        task_arithmetic.STRATEGY,
        ties.STRATEGY,
        dare.DARE_TIES,
        dare.DARE_LINEAR,
        breadcrumbs.BREADCRUMBS,
        breadcrumbs.BREADCRUMBS_TIES,
        della.DELLA,
        della.DELLA_LINEAR,
        slerp.SLERP,
        slerp.MULTISLERP,
        model_stock.STRATEGY,
        expo.STRATEGY,
        consensus.STRATEGY,
        tsv.STRATEGY,
        iso.ISO_C,
        iso.ISO_CTS,
        tall.STRATEGY,
        pcb.STRATEGY,
        lines.LINES,
        lines.LAYERWISE,
    ]
    table = {s.name: s for s in curated}
    covered = {s.mergekit_method for s in curated}
    for method in registered_methods():
        if method.spec.name not in covered:
            table[method.spec.name] = strategy_from_mergekit(method)
    return table


def names() -> list[str]:
    """All strategy names, curated ones first."""
    return list(_strategies())


def get(name: str) -> Strategy:
    try:
        return _strategies()[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(names())}") from None


def all_strategies() -> list[Strategy]:
    return list(_strategies().values())


def fast_strategies() -> list[str]:
    """Strategies with a fused in-memory kernel (the loop's hot path)."""
    return [s.name for s in _strategies().values() if s.kernel is not None]
