"""TIES: trim each delta to its top-``density`` magnitudes, elect a sign per coordinate by the
summed weighted deltas, average the agreeing ones (mergekit ``ties``, arXiv:2306.01708)."""

from __future__ import annotations

from functools import partial

from mergenet.merge_strategies._common import density, lam, normalize, rescale
from mergenet.merge_strategies._gta import gta_kernel
from mergenet.merge_strategies.space import ParamSpace
from mergenet.merge_strategies.strategy import Strategy

STRATEGY = Strategy(
    name="ties",
    mergekit_method="ties",
    space=ParamSpace((density(), lam(), normalize(True), rescale(False))),
    description="Trim, elect sign, disjoint merge.",
    kernel=partial(gta_kernel, sparsification="magnitude", consensus=True),
)
