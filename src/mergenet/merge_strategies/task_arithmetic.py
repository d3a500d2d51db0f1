"""Task arithmetic: ``base + λ·Σ w_k δ_k`` (mergekit ``task_arithmetic``, arXiv:2212.04089)."""

from __future__ import annotations

from functools import partial

from mergenet.merge_strategies._common import lam, normalize
from mergenet.merge_strategies._gta import gta_kernel
from mergenet.merge_strategies.space import ParamSpace
from mergenet.merge_strategies.strategy import Strategy

STRATEGY = Strategy(
    name="task_arithmetic",
    mergekit_method="task_arithmetic",
    space=ParamSpace((lam(), normalize(False))),
    description="Add the weighted sum of task vectors to the base.",
    kernel=partial(gta_kernel, sparsification=None, consensus=False),
)
