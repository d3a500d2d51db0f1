"""The comparison search: CMA-ES (``cma``) over one fixed strategy's weights and density.

This is the mergekit-evolve design: a fixed merge method, a real-valued genome of
per-contribution weights (and the strategy's density, where it has one), minimised by CMA-ES
with a generation barrier (ask a population, evaluate all of it, tell). It uses the same
evaluation pool, the same parent and the same selection sample as the loop, so the two can be
compared evaluation for evaluation (``benchmarks/loop_vs_cmaes.py``, its only user).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mergenet.coordinator.acceptance import score_outcome
from mergenet.evaluator.score import ScoreError, ScoreParams
from mergenet.merge_strategies import registry
from mergenet.merge_strategies.recipe import Contribution, Recipe
from mergenet.protocol.evaluation import EvalOutcome, EvalTask, EvaluationPool, SampleSpec


@dataclass(frozen=True)
class CmaPoint:
    evaluation: int
    recipe: Recipe
    gain: float
    """S − S_0 on the selection sample (what CMA-ES maximises)."""


def genome_to_recipe(
    x: Sequence[float], *, parent: str, contributions: Sequence[str], strategy: str
) -> Recipe:
    """x = (w_1 … w_k[, density]) in [0, 1]; weights are used as is, density mapped into the
    strategy's own range."""
    space = registry.get(strategy).space
    k = len(contributions)
    params = {}
    if "density" in space.names:
        p = space["density"]
        assert p.low is not None and p.high is not None
        params["density"] = p.low + float(np.clip(x[k], 0, 1)) * (p.high - p.low)
    weights = [float(np.clip(v, 0.0, 1.0)) for v in x[:k]]
    return Recipe(
        parent=parent,
        strategy=strategy,
        params=params,
        contributions=[
            Contribution(sha256=c, weight=w) for c, w in zip(contributions, weights, strict=True)
        ],
    )


def cmaes_search(
    pool: EvaluationPool,
    *,
    parent: str,
    contributions: Sequence[str],
    sample: SampleSpec,
    budget: int,
    strategy: str = "ties",
    x0_weight: float = 0.3,
    sigma0: float = 0.15,
    seed: int = 0,
    score: ScoreParams | None = None,
    on_eval: Callable[[CmaPoint], None] | None = None,
) -> list[CmaPoint]:
    """Run CMA-ES for ``budget`` evaluations; returns every evaluated point in order."""
    import cma

    params = score or ScoreParams()
    has_density = "density" in registry.get(strategy).space.names
    x0 = [x0_weight] * len(contributions) + ([0.5] if has_density else [])
    es = cma.CMAEvolutionStrategy(
        x0,
        sigma0,
        {"bounds": [0.0, 1.0], "seed": seed + 1, "verbose": -9, "maxfevals": budget},
    )
    points: list[CmaPoint] = []
    while len(points) < budget:
        xs = es.ask()[: budget - len(points)]
        recipes = [
            genome_to_recipe(x, parent=parent, contributions=contributions, strategy=strategy)
            for x in xs
        ]
        for i, r in enumerate(recipes):
            pool.submit(
                EvalTask(key=f"{i}:cmaes:{sample.seed}", recipe=r.model_dump(), sample=sample)
            )
        gains: dict[int, float] = {}
        while len(gains) < len(recipes):
            for outcome in pool.poll(1.0):
                i = int(outcome.key.split(":")[0])
                gains[i] = _gain(outcome, params)
        for i, r in enumerate(recipes):
            point = CmaPoint(len(points) + 1, r, gains[i])
            points.append(point)
            if on_eval is not None:
                on_eval(point)
        if len(xs) == es.popsize:  # a truncated last generation is not told
            es.tell(xs, [-gains[i] for i in range(len(xs))])
    return points


def _gain(outcome: EvalOutcome, params: ScoreParams) -> float:
    """G of one evaluation; a failed one (or a NaN metric) counts as a bad point, −1."""
    if outcome.error:
        return -1.0
    try:
        return score_outcome(outcome, params).gain
    except ScoreError:
        return -1.0
