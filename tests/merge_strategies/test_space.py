"""Parameter spaces: every operator the evolution loop uses stays inside the space."""

from __future__ import annotations

import numpy as np
import pytest

from mergenet.merge_strategies import registry
from mergenet.merge_strategies.space import Param, ParamSpace


@pytest.mark.parametrize("name", registry.names())
def test_operators_stay_inside(name):
    space = registry.get(name).space
    rng = np.random.default_rng(0)
    assert space.contains(space.defaults())
    pop = [space.sample(rng) for _ in range(20)]
    for p in pop:
        assert space.contains(p), p
    for _ in range(100):
        a, b = pop[rng.integers(len(pop))], pop[rng.integers(len(pop))]
        child = space.crossover(a, b, float(rng.uniform(-0.5, 1.5)), float(rng.normal()), rng)
        assert space.contains(child), child
        mutant = space.mutate(child, sigma=float(rng.uniform(0, 2)), rng=rng)
        assert space.contains(mutant), mutant


def test_contain_clips_and_rejects_unknown_names():
    space = registry.get("ties").space
    p = space.contain({"density": 7.0, "lambda": -1, "normalize": "false"})
    assert p == {"density": 1.0, "lambda": 0.0, "normalize": False, "rescale": False}
    with pytest.raises(ValueError, match="unknown parameter"):
        space.contain({"densty": 0.5})


def test_crossover_is_the_convex_blend_plus_eps():
    space = ParamSpace((Param("x", "float", 0.0, 0.0, 10.0),))
    assert space.crossover({"x": 2.0}, {"x": 6.0}, 0.25, 0.0)["x"] == pytest.approx(5.0)
    assert space.crossover({"x": 2.0}, {"x": 6.0}, 0.25, 0.1)["x"] == pytest.approx(6.0)


def test_log_parameters_move_in_log_space():
    space = ParamSpace((Param("t", "float", 1e-3, 1e-6, 1.0, log=True),))
    mid = space.crossover({"t": 1e-6}, {"t": 1.0}, 0.5, 0.0)["t"]
    assert mid == pytest.approx(1e-3, rel=1e-6)


def test_della_repair_keeps_epsilon_legal():
    space = registry.get("della").space
    p = space.contain({"density": 0.1, "epsilon": 0.4})
    assert p["density"] - p["epsilon"] > 0 and p["density"] + p["epsilon"] < 1
