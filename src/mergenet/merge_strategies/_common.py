"""Parameter declarations shared by several strategies (names and defaults are mergekit's)."""

from __future__ import annotations

from mergenet.merge_strategies.space import Param, b, f


def lam(default: float = 1.0) -> Param:
    return f("lambda", default, 0.0, 2.0, "scale of the merged delta")


def density(default: float = 1.0) -> Param:
    return f("density", default, 0.01, 1.0, "fraction of each delta's entries kept")


def normalize(default: bool) -> Param:
    return b("normalize", default, "divide by the summed weights (of the kept deltas)")


def rescale(default: bool) -> Param:
    return b("rescale", default, "rescale each pruned delta to its original L1 norm")
