"""DARE: drop each delta entry with probability ``1 − density`` and rescale the survivors to
the delta's L1 norm, then merge linearly (``dare_linear``) or with TIES sign election
(``dare_ties``) — mergekit's methods, arXiv:2311.03099. The drop is drawn from an explicit
``torch.Generator`` (the engine seeds one per tensor from the recipe seed; it seeds each
delta's SFC64 mask stream, see ``_select``), so a recipe rebuilds bit-identically."""

from __future__ import annotations

from functools import partial

from mergenet.merge_strategies._common import density, lam, normalize, rescale
from mergenet.merge_strategies._gta import gta_kernel
from mergenet.merge_strategies.space import ParamSpace
from mergenet.merge_strategies.strategy import Strategy

_SPACE = ParamSpace((density(), lam(), normalize(False), rescale(True)))

DARE_TIES = Strategy(
    name="dare_ties",
    mergekit_method="dare_ties",
    space=_SPACE,
    description="Random drop and rescale, then TIES sign election.",
    kernel=partial(gta_kernel, sparsification="random", consensus=True),
    stochastic=True,
)

DARE_LINEAR = Strategy(
    name="dare_linear",
    mergekit_method="dare_linear",
    space=_SPACE,
    description="Random drop and rescale, then a weighted sum.",
    kernel=partial(gta_kernel, sparsification="random", consensus=False),
    stochastic=True,
)
