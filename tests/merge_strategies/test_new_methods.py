"""Property tests for the data-free merges newer than mergekit's (issue 17, item 4):
TSV-Merge, Iso-C / Iso-CTS, consensus TA with TALL masks, PCB, LiNeS and layer-wise task
arithmetic — what each must preserve or remove on constructed inputs."""

from __future__ import annotations

import pytest
import torch

from mergenet.merge_strategies import engine, registry
from mergenet.merge_strategies._depth import depth_map
from mergenet.merge_strategies.iso import iso_c_kernel, iso_cts_kernel
from mergenet.merge_strategies.pcb import pcb_kernel
from mergenet.merge_strategies.tall import tall_kernel
from mergenet.merge_strategies.tsv import tsv_kernel

from .conftest import random_models

KERNELS = ("tsv", "iso_c", "iso_cts", "tall_consensus", "pcb")
DEPTH = ("lines", "task_arithmetic_layerwise")


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mat(m: int, n: int, seed: int, rank: int | None = None) -> torch.Tensor:
    g = _g(seed)
    if rank is None:
        return torch.randn(m, n, generator=g) * 0.01
    return torch.randn(m, rank, generator=g) @ torch.randn(rank, n, generator=g) * 0.01


def _p(name: str, **params: object) -> dict[str, object]:
    return registry.get(name).space.contain(params)


def _run(kernel, base, taus, name, weights=None, **params):  # type: ignore[no-untyped-def]
    w = [1.0] * len(taus) if weights is None else weights
    return kernel(base, taus, w, _p(name, **params), None) - base


def _spectrum(d: torch.Tensor) -> torch.Tensor:
    s = torch.linalg.svdvals(d.double())
    return s[s > s[0] * 1e-6]


# -- TSV-Merge --


def test_tsv_one_task_full_rank_returns_alpha_tau():
    base, tau = _mat(40, 24, 0), _mat(40, 24, 1)
    out = _run(tsv_kernel, base, [tau], "tsv", **{"lambda": 0.7, "fraction": 1.0})
    assert torch.allclose(out, 0.7 * tau, atol=1e-6)


def test_tsv_sums_tasks_on_orthogonal_subspaces_exactly():
    q_u, _ = torch.linalg.qr(torch.randn(32, 32, generator=_g(2)))
    q_v, _ = torch.linalg.qr(torch.randn(20, 20, generator=_g(3)))
    t1 = (q_u[:, :3] * torch.tensor([3.0, 2.0, 1.0])) @ q_v[:, :3].T
    t2 = (q_u[:, 3:5] * torch.tensor([2.5, 0.5])) @ q_v[:, 3:5].T
    out = _run(tsv_kernel, torch.zeros(32, 20), [t1, t2], "tsv")
    assert torch.allclose(out, t1 + t2, atol=1e-5)


def test_tsv_removes_interference_of_identical_directions():
    # The same task twice (a copied delta): a plain sum doubles it; TSV's whitening maps
    # [u, u] to [u, u]/√2 on each side, so the two copies merge as one: τ, not 2τ, and no
    # arbitrary null-space direction is added.
    u = torch.nn.functional.normalize(torch.randn(16, 1, generator=_g(4)), dim=0)
    v = torch.nn.functional.normalize(torch.randn(12, 1, generator=_g(5)), dim=0)
    tau = u @ v.T
    out = _run(tsv_kernel, torch.zeros(16, 12), [tau, tau], "tsv")
    assert float(out.norm()) == pytest.approx(float(tau.norm()), rel=1e-4)
    assert torch.allclose(out, tau, atol=1e-6)


def test_tsv_zero_delta_and_vectors():
    base, tau = _mat(30, 20, 6), _mat(30, 20, 7, rank=3)
    out = _run(tsv_kernel, base, [tau, torch.zeros_like(tau)], "tsv")
    assert torch.allclose(out, tau, atol=1e-6)
    b1, a, c = torch.randn(20, generator=_g(8)), _mat(20, 1, 9)[:, 0], _mat(20, 1, 10)[:, 0]
    out1 = _run(tsv_kernel, b1, [a, c], "tsv", **{"lambda": 2.0})
    assert torch.allclose(out1, (a + c), atol=1e-7)  # 2 · mean


# -- Iso-C / Iso-CTS --


def test_iso_c_one_task_has_a_flat_spectrum_at_the_mean_singular_value():
    tau = _mat(48, 32, 11)
    out = _run(iso_c_kernel, _mat(48, 32, 12), [tau], "iso_c", **{"lambda": 1.3})
    s, s_tau = _spectrum(out), _spectrum(tau)
    assert s.numel() == 32
    assert torch.allclose(s, torch.full_like(s, 1.3 * float(s_tau.mean())), rtol=1e-4)
    # same singular subspaces as the task: U·Vᵀ of τ
    u, _, vh = torch.linalg.svd(tau, full_matrices=False)
    assert torch.allclose(out, 1.3 * float(s_tau.mean()) * (u @ vh), atol=1e-6)


def test_iso_c_leaves_null_directions_alone():
    tau = _mat(30, 30, 13, rank=2)
    out = _run(iso_c_kernel, torch.zeros(30, 30), [tau], "iso_c")
    assert _spectrum(out).numel() == 2


def test_iso_cts_is_flat_and_fills_task_specific_directions():
    taus = [_mat(40, 30, 20 + t) for t in range(3)]
    out = _run(iso_cts_kernel, torch.zeros(40, 30), taus, "iso_cts", common=0.5)
    s = _spectrum(out)
    assert s.numel() == 15 + 3 * 5  # k_c = 15 common + ⌊15/3⌋ per task
    assert float(s.max() / s.min()) == pytest.approx(1.0, abs=1e-4)
    one = _run(iso_cts_kernel, torch.zeros(40, 30), taus[:1], "iso_cts", common=1.0)
    iso = _run(iso_c_kernel, torch.zeros(40, 30), taus[:1], "iso_c")
    assert torch.allclose(one, iso, atol=1e-6)


def test_iso_vectors_get_the_sum():
    a, c = _mat(10, 1, 30)[:, 0], _mat(10, 1, 31)[:, 0]
    for kernel, name in ((iso_c_kernel, "iso_c"), (iso_cts_kernel, "iso_cts")):
        assert torch.allclose(_run(kernel, torch.zeros(10), [a, c], name), a + c)


# -- consensus TA with TALL masks --


def test_tall_with_k_equal_n_keeps_only_coordinates_every_task_claims():
    taus = [torch.randn(2000, generator=_g(40 + t)) for t in range(3)]
    lam = 0.4
    mtl = sum(taus)
    claims = [(t.abs() >= lam * (mtl - t).abs()) for t in taus]
    want = torch.where(claims[0] & claims[1] & claims[2], mtl, 0.0)
    out = _run(tall_kernel, torch.zeros(2000), taus, "tall_consensus", min_agree=3)
    assert torch.equal(out, want)
    assert 0 < int((out != 0).sum()) < 2000


def test_tall_drops_selfish_coordinates_and_one_task_is_task_arithmetic():
    t1 = torch.tensor([1.0, 1.0, 0.5, 0.0])
    t2 = torch.tensor([0.0, 0.9, 0.6, 0.2])
    out = _run(tall_kernel, torch.zeros(4), [t1, t2], "tall_consensus")  # k = 2
    assert out.tolist() == pytest.approx([0.0, 1.9, 1.1, 0.0])  # coords 0 and 3: one task's
    one = _run(tall_kernel, torch.zeros(4), [t1], "tall_consensus", **{"lambda": 0.5})
    assert torch.equal(one, 0.5 * t1)  # k capped at T = 1: every coordinate kept


# -- PCB --


@pytest.mark.parametrize("drop", [0.0, 0.1, 0.37])
def test_pcb_drops_exactly_the_requested_fraction(drop):
    tau = torch.randn(30, 20, generator=_g(50)) + 0.01  # no exact zeros
    out = _run(pcb_kernel, torch.zeros(30, 20), [tau], "pcb", drop=drop)
    dropped = out == 0
    assert int(dropped.sum()) == round(drop * 600)
    assert torch.allclose(out[~dropped], tau[~dropped])  # one task: a mean of itself
    if drop:  # the lowest-balance entries are the smallest |τ| for one task
        assert float(tau[dropped].abs().max()) <= float(tau[~dropped].abs().min())


def test_pcb_is_a_balanced_mean_and_zero_deltas_abstain():
    t1 = torch.randn(500, generator=_g(51))
    same = _run(pcb_kernel, torch.zeros(500), [t1, t1.clone()], "pcb", drop=0.0)
    assert torch.allclose(same, t1, atol=1e-6)
    with_zero = _run(pcb_kernel, torch.zeros(500), [t1, torch.zeros(500)], "pcb", drop=0.0)
    assert torch.allclose(with_zero, t1, atol=1e-6)
    t2 = torch.randn(500, generator=_g(52))
    mixed = _run(pcb_kernel, torch.zeros(500), [t1, t2], "pcb", drop=0.0)
    lo, hi = torch.minimum(t1, t2), torch.maximum(t1, t2)
    assert bool(((mixed >= lo - 1e-6) & (mixed <= hi + 1e-6)).all())  # a convex combination


# -- LiNeS and layer-wise task arithmetic --


def _layered(blocks: int = 4):  # type: ignore[no-untyped-def]
    names = ["model.embed_tokens.weight"]
    names += [f"model.layers.{b}.mlp.up_proj.weight" for b in range(blocks)]
    names += [f"model.layers.{b}.input_layernorm.weight" for b in range(blocks)]
    names += ["model.norm.weight", "lm_head.weight"]
    g = _g(60)
    base = {n: torch.randn(8 if "norm" in n else (8, 6), generator=g) for n in names}
    deltas = [{n: torch.randn(t.shape, generator=g) * 0.01 for n, t in base.items()}]
    return base, deltas


def test_depth_map():
    base, _ = _layered()
    d = depth_map(base)
    assert d["model.embed_tokens.weight"] == 0.0 and d["lm_head.weight"] == 1.0
    assert [d[f"model.layers.{b}.mlp.up_proj.weight"] for b in range(4)] == pytest.approx(
        [0, 1 / 3, 2 / 3, 1]
    )


def test_lines_scales_layer_zero_by_alpha_and_the_last_by_alpha_plus_beta():
    base, deltas = _layered()
    out = engine.merge_state_dict("lines", base, deltas, [1.0], {"alpha": 0.3, "beta": 0.9})
    for b, scale in ((0, 0.3), (1, 0.6), (2, 0.9), (3, 1.2)):
        for kind in ("mlp.up_proj.weight", "input_layernorm.weight"):
            n = f"model.layers.{b}.{kind}"
            assert torch.allclose(out[n] - base[n], scale * deltas[0][n], atol=1e-6), n
    n = "model.embed_tokens.weight"
    assert torch.allclose(out[n] - base[n], 0.3 * deltas[0][n], atol=1e-6)


def test_layerwise_task_arithmetic_per_group_and_equal_to_task_arithmetic_at_one():
    base, deltas = _layered()
    ta = engine.merge_state_dict("task_arithmetic", base, deltas * 2, [0.5, 0.25])
    lw = engine.merge_state_dict("task_arithmetic_layerwise", base, deltas * 2, [0.5, 0.25])
    assert all(torch.allclose(ta[n], lw[n], atol=1e-7) for n in base)
    params = {"lambda_0": 0.0, "lambda_1": 1.0, "lambda_2": 1.0, "lambda_3": 2.0}
    out = engine.merge_state_dict("task_arithmetic_layerwise", base, deltas, [1.0], params)
    assert torch.equal(
        out["model.layers.0.mlp.up_proj.weight"], base["model.layers.0.mlp.up_proj.weight"]
    )
    n = "lm_head.weight"
    assert torch.allclose(out[n] - base[n], 2 * deltas[0][n], atol=1e-6)


def test_depth_strategies_refuse_a_tensor_without_a_bound_name():
    with pytest.raises(ValueError, match="tensor names"):
        registry.get("lines").merge_tensor(torch.zeros(3), [torch.ones(3)], [1.0], _p("lines"))


# -- every new method: registered, drawable, dtype, finite, 1-D --


@pytest.mark.parametrize("name", KERNELS + DEPTH)
def test_registered_drawable_dtype_and_finite(name):
    import numpy as np

    s = registry.get(name)
    assert name in registry.names() and s.min_deltas == 1 and s.max_deltas is None
    # opt-in for the loop (see _direct): not in the default set, selectable by name
    assert s.kernel is None and name not in registry.fast_strategies()
    base, _, deltas = random_models(3, seed=7)
    base16 = {n: t.to(torch.bfloat16) for n, t in base.items()}
    for k in (1, 3):
        params = s.space.sample(np.random.default_rng(k))  # a point the loop may draw
        out = engine.merge_state_dict(name, base16, deltas[:k], [0.6] * k, params)
        for n, t in out.items():
            assert t.dtype == torch.bfloat16 and t.shape == base[n].shape, n
            assert bool(torch.isfinite(t).all()), n


@pytest.mark.parametrize("name", KERNELS)
def test_mergekit_runs_the_same_method(name):
    from mergekit.merge_methods import merge_state_dicts

    from mergenet.merge_strategies.mergekit_plugin import ensure_registered

    ensure_registered()
    s = registry.get(name)
    base, fts, deltas = random_models(2, seed=8)
    weights = [0.7, 0.4]
    ours = engine.merge_state_dict(name, base, deltas, weights)
    p = s.mergekit_parameters(s.space.defaults(), 2, weights)
    models = {"base": base, **{f"m{j}": ft for j, ft in enumerate(fts)}}
    theirs = merge_state_dicts(models, s.mergekit_method, parameters=p, base="base")
    assert max(float((ours[n] - theirs[n]).abs().max()) for n in ours) <= 1e-6


def test_the_loop_draws_them_only_when_named():
    from mergenet.coordinator.loop import default_strategies
    from mergenet.coordinator.settings import LoopSettings

    assert not set(KERNELS + DEPTH) & set(default_strategies())
    assert LoopSettings(strategies=KERNELS + DEPTH).strategies == KERNELS + DEPTH


@pytest.mark.parametrize("name", ["lines", "task_arithmetic_layerwise"])
def test_export_refuses_a_strategy_mergekit_cannot_run(name: str) -> None:
    from mergenet.merge_strategies.export import mergekit_config
    from mergenet.merge_strategies.recipe import Contribution, Recipe

    recipe = Recipe(parent="0" * 64, strategy=name, contributions=[Contribution(sha256="1" * 64)])
    with pytest.raises(ValueError, match="no mergekit method"):
        mergekit_config(recipe, "base", ["m1"])
