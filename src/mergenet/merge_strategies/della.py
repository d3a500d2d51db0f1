"""DELLA: magnitude-ranked random drop (MAGPRUNE) — larger entries are kept with higher
probability, ``density ± epsilon`` — then rescale and merge (mergekit ``della`` /
``della_linear``, arXiv:2406.11617). mergekit requires ``density ± epsilon`` inside (0, 1)
when density < 1; the space's repair shrinks ``epsilon`` so every sampled point is legal."""

from __future__ import annotations

from mergenet.merge_strategies._common import density, lam, normalize, rescale
from mergenet.merge_strategies.space import Params, ParamSpace, f
from mergenet.merge_strategies.strategy import Strategy


def _repair(p: Params) -> Params:
    if p["density"] < 1:
        limit = 0.999 * min(p["density"], 1 - p["density"])
        p["epsilon"] = min(p["epsilon"], limit)
    return p


def _space(normalize_default: bool) -> ParamSpace:
    return ParamSpace(
        (
            density(),
            f("epsilon", 0.15, 0.0, 0.5, "spread of keep probabilities around density"),
            lam(),
            normalize(normalize_default),
            rescale(True),
        ),
        repair=_repair,
    )


DELLA = Strategy(
    name="della",
    mergekit_method="della",
    space=_space(True),
    description="Magnitude-ranked random drop, rescale, TIES sign election.",
    stochastic=True,
)

DELLA_LINEAR = Strategy(
    name="della_linear",
    mergekit_method="della_linear",
    space=_space(False),
    description="Magnitude-ranked random drop, rescale, weighted sum.",
    stochastic=True,
)
