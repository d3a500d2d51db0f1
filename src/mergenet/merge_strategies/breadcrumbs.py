"""Model breadcrumbs: drop both the smallest and the ``gamma`` largest (outlier) entries of each
delta (mergekit ``breadcrumbs`` / ``breadcrumbs_ties``, arXiv:2312.06795). Runs mergekit's
implementation tensor by tensor."""

from __future__ import annotations

from mergenet.merge_strategies._common import density, lam, normalize, rescale
from mergenet.merge_strategies.space import ParamSpace, f
from mergenet.merge_strategies.strategy import Strategy

_GAMMA = f("gamma", 0.01, 0.0, 0.2, "fraction of largest-magnitude entries removed")

BREADCRUMBS = Strategy(
    name="breadcrumbs",
    mergekit_method="breadcrumbs",
    space=ParamSpace((density(), _GAMMA, lam(), normalize(False), rescale(False))),
    description="Drop small and outlier entries, then a weighted sum.",
)

BREADCRUMBS_TIES = Strategy(
    name="breadcrumbs_ties",
    mergekit_method="breadcrumbs_ties",
    space=ParamSpace((density(), _GAMMA, lam(), normalize(False), rescale(False))),
    description="Drop small and outlier entries, then TIES sign election.",
)
