"""How the loop proposes candidates: the genome is a recipe (strategy params + weights).

* ``single``   M(θ_current, δ_i, s): one contribution, a sampled weight and params.
* ``multi``    a subset (often all) of the pool with per-contribution weights around a
               sampled scale — the merges that combine contributors' gains.
* ``crossover`` Algorithm 2: two of the strategy's top-K recipes on the current version,
               params α·a + (1−α)·b + ε inside the strategy's space, weights blended the same way.
* ``mutation`` θ_best + N(0, σ): the best recipe on the current version with mutation noise drawn
               from a stored seed (so the candidate stays an O(1) recipe), plus a small step in
               its params and weights.

Their ranges are :class:`mergenet.coordinator.settings.ProposalSettings`. Weights are drawn
log-uniformly below 1 by default: contributors forget what they did not
train on, so a merge works best when each delta is scaled down (measured on the world).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sqlalchemy.orm import Session

from mergenet.coordinator import models as m
from mergenet.coordinator.settings import ProposalSettings
from mergenet.coordinator.status import CandidateStatus, Kind
from mergenet.merge_strategies import registry
from mergenet.merge_strategies.recipe import Contribution, NoiseSpec, Recipe


def _loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def _params(strategy: str, rng: np.random.Generator) -> dict:
    space = registry.get(strategy).space
    return space.defaults() if rng.random() < 0.3 else space.sample(rng)


def single(
    strategy: str, parent: str, sha: str, rng: np.random.Generator, cfg: ProposalSettings
) -> Recipe:
    w = _loguniform(rng, cfg.weight_low, cfg.weight_high)
    return Recipe(
        parent=parent,
        strategy=strategy,
        params=_params(strategy, rng),
        contributions=[Contribution(sha256=sha, weight=w)],
        seed=_seed(rng),
    )


def multi(
    strategy: str, parent: str, pool: Sequence[str], rng: np.random.Generator, cfg: ProposalSettings
) -> Recipe:
    s = registry.get(strategy)
    lo = max(2, s.min_deltas)
    if len(pool) < lo:
        raise ValueError(f"{strategy} needs {lo} contributions, the pool has {len(pool)}")
    if rng.random() < cfg.p_all or len(pool) == lo:
        chosen = list(pool)
    else:
        k = int(rng.integers(lo, len(pool) + 1))
        chosen = [pool[i] for i in sorted(rng.choice(len(pool), size=k, replace=False))]
    if s.max_deltas is not None:
        chosen = chosen[: s.max_deltas]
    scale = _loguniform(rng, cfg.multi_low, cfg.multi_high)
    weights = [
        min(cfg.max_weight, scale * math.exp(cfg.weight_jitter * rng.normal())) for _ in chosen
    ]
    return Recipe(
        parent=parent,
        strategy=strategy,
        params=_params(strategy, rng),
        contributions=[
            Contribution(sha256=c, weight=w) for c, w in zip(chosen, weights, strict=True)
        ],
        seed=_seed(rng),
    )


def crossover(
    a: Recipe, b: Recipe, parent: str, rng: np.random.Generator, cfg: ProposalSettings
) -> Recipe:
    """Algorithm 2's α·a + (1−α)·b + ε for two recipes of the same strategy."""
    if a.strategy != b.strategy:
        raise ValueError("crossover needs two recipes of one strategy")
    space = registry.get(a.strategy).space
    alpha = float(rng.uniform(0, 1))
    eps = {p.name: float(rng.normal(0, cfg.crossover_eps)) for p in space.params}
    params = space.crossover(a.params, b.params, alpha, eps, rng)
    wa = {c.sha256: c.weight for c in a.contributions}
    wb = {c.sha256: c.weight for c in b.contributions}
    contributions = []
    for sha in sorted(set(wa) | set(wb)):
        w = alpha * wa.get(sha, 0.0) + (1 - alpha) * wb.get(sha, 0.0)
        w = min(cfg.max_weight, w + float(rng.normal(0, cfg.crossover_eps * max(w, 0.05))))
        if w >= cfg.drop_below:
            contributions.append(Contribution(sha256=sha, weight=w))
    if not contributions:
        contributions = list(a.contributions)
    return Recipe(
        parent=parent,
        strategy=a.strategy,
        params=params,
        contributions=contributions,
        seed=_seed(rng),
    )


def mutation(best: Recipe, parent: str, rng: np.random.Generator, cfg: ProposalSettings) -> Recipe:
    """θ_best + N(0, σ) from a stored seed, with a small step in params and weights."""
    space = registry.get(best.strategy).space
    params = space.mutate(best.params, cfg.param_sigma, rng)
    contributions = [
        Contribution(
            sha256=c.sha256,
            weight=min(cfg.max_weight, c.weight * math.exp(cfg.param_sigma * rng.normal())),
        )
        for c in best.contributions
    ]
    return Recipe(
        parent=parent,
        strategy=best.strategy,
        params=params,
        contributions=contributions,
        seed=best.seed,
        noise=NoiseSpec(seed=_seed(rng), sigma=cfg.mutation_sigma),
    )


def scoring_recipe(parent: str, sha: str) -> Recipe:
    """How a new contribution is scored: current + δ at weight 1 (data flow step 2).

    ``parent`` is the current version, whatever version the contribution declares: δ =
    θ_contributor − θ_declared_parent is applied to it as a task vector (so are merges, which
    name deltas by hash only; :mod:`mergenet.coordinator.parents`)."""
    return Recipe(
        parent=parent,
        strategy="task_arithmetic",
        params={},
        contributions=[Contribution(sha256=sha, weight=1.0)],
    )


def credited(version: Recipe, parent: Recipe | None) -> list[str]:
    """The contributions ``version`` newly adds, or weights above ``parent``'s recipe: the ones
    eligible for credit when it is accepted (a contribution merged before at the same or a
    higher weight is paid nothing again). In recipe order, each once."""
    before = {c.sha256: c.weight for c in parent.contributions} if parent is not None else {}
    out: list[str] = []
    for c in version.contributions:
        if c.weight > 0 and c.weight > before.get(c.sha256, 0.0) and c.sha256 not in out:
            out.append(c.sha256)
    return out


def leave_one_out(recipe: Recipe, sha: str) -> Recipe | None:
    """V∖c: ``recipe`` without contribution ``sha`` (same parent, params, seed and noise).

    When the rest is too few for the strategy (``min_deltas``), the rest is merged by task
    arithmetic (a single-delta strategy has no ablation that keeps its own params); None when
    nothing is left, i.e. V∖c is the parent itself and G(V∖c | P) = 0 without evaluating.
    """
    rest = [c for c in recipe.contributions if c.sha256 != sha]
    if not rest:
        return None
    spec = registry.get(recipe.strategy)
    if len(rest) >= spec.min_deltas:
        return recipe.model_copy(update={"contributions": rest})
    return recipe.model_copy(
        update={"strategy": "task_arithmetic", "params": {}, "contributions": rest}
    )


def new_candidate(
    s: Session, recipe: Recipe, kind: Kind, seed: int, contribution: str | None = None
) -> m.Candidate:
    """A queued candidate row for ``recipe`` (canonical params; flushed, so it has an id)."""
    c = recipe.canonical()
    cand = m.Candidate(
        parent_hash=c.parent,
        strategy=c.strategy,
        kind=kind,
        recipe=c.model_dump(mode="json", exclude_none=True),
        recipe_hash=c.sha256,
        contribution_sha=contribution,
        status=CandidateStatus.QUEUED,
        sample_seed=seed,
    )
    s.add(cand)
    s.flush()
    return cand
