"""P, L, W, D, S and the reward against values worked out by hand."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mergenet.evaluator.score import (
    ScoreError,
    ScoreParams,
    compute_score,
    diversity,
    no_change_score,
    relative_delta_norm,
    relative_distance_between,
    reward_amount,
    sigmoid,
)
from mergenet.protocol.results import EvalResult, TaskResult


def result(**tasks: tuple[float, float, float]) -> EvalResult:
    """``task=(ppl, answer_loss, acc_choice)``; acc_letter is set to a decoy value."""
    return EvalResult(
        tasks={
            name: TaskResult(
                task=name, n_rows=10, ppl=p, answer_loss=loss, acc_letter=0.99, acc_choice=a
            )
            for name, (p, loss, a) in tasks.items()
        }
    )


BASE = result(a=(10.0, 2.0, 0.5), b=(20.0, 4.0, 0.25))
CAND = result(a=(8.0, 1.5, 0.6), b=(22.0, 4.0, 0.3))
PARAMS = ScoreParams(k=10.0, alphas=(0.4, 0.3, 0.2, 0.1))


def test_every_term_matches_the_hand_computation() -> None:
    got = compute_score(BASE, CAND, relative_distance=0.02, params=PARAMS)
    p_, l_, w_, d_, s_ = got.P, got.L, got.W, got.D, got.S
    # w = (0.5, 0.5)
    # P: 0.5·(10−8)/10 + 0.5·(20−22)/20 = 0.1 − 0.05 = 0.05;  σ(10·0.05) = 1/(1+e^−0.5)
    assert got.ppl_gain == pytest.approx(0.05, abs=1e-15)
    assert p_ == pytest.approx(1 / (1 + math.exp(-0.5)), abs=1e-15)
    assert p_ == pytest.approx(0.6224593312018546, abs=1e-15)
    # L: 0.5·(2−1.5)/2 + 0.5·(4−4)/4 = 0.125;  σ(1.25)
    assert got.loss_gain == pytest.approx(0.125, abs=1e-15)
    assert l_ == pytest.approx(0.7772998611746911, abs=1e-15)
    # W: 1 − σ(10·0.02) = 1 − 1/(1+e^−0.2)
    assert w_ == pytest.approx(0.45016600268752205, abs=1e-15)
    # D: q ∝ acc_choice + 1e-3 = (0.601, 0.301) / 0.902
    #    KL = 0.5·ln(0.5/(0.601/0.902)) + 0.5·ln(0.5/(0.301/0.902)) = 0.0586147398606...
    assert got.kl == pytest.approx(0.058614739860636755, abs=1e-12)
    assert d_ == pytest.approx(0.9413852601393633, abs=1e-12)
    # S = 0.4·P + 0.3·L + 0.2·W + 0.1·D
    assert s_ == pytest.approx(
        0.4 * 0.6224593312018546
        + 0.3 * 0.7772998611746911
        + 0.2 * 0.45016600268752205
        + 0.1 * 0.9413852601393633,
        abs=1e-12,
    )
    assert s_ == pytest.approx(0.6663454173845899, abs=1e-12)


def test_the_no_change_candidate_sits_at_the_baseline() -> None:
    same = compute_score(BASE, BASE, relative_distance=0.0, params=PARAMS)
    assert (same.P, same.L, same.W) == (0.5, 0.5, 0.5)
    # D(base): q ∝ (0.501, 0.251)/0.752; KL = 0.5·ln(0.5/q_a) + 0.5·ln(0.5/q_b)
    d_base = 1 - (0.5 * math.log(0.5 / (0.501 / 0.752)) + 0.5 * math.log(0.5 / (0.251 / 0.752)))
    assert diversity(BASE, PARAMS)[0] == pytest.approx(d_base, abs=1e-12)
    assert same.to_dict()["D"] == pytest.approx(d_base, abs=1e-12)
    # S = 0.5·(α₁+α₂+α₃) + α₄·D = 0.5·0.9 + 0.1·D
    assert no_change_score(BASE, PARAMS) == pytest.approx(0.45 + 0.1 * d_base, abs=1e-12)
    assert no_change_score(BASE, PARAMS) == pytest.approx(0.5441440376718429, abs=1e-12)


_perf = st.floats(0.0, 1.0)
_pos = st.floats(0.01, 1000.0)


@st.composite
def eval_results(draw, names=("t1", "t2", "t3")) -> EvalResult:
    return result(**{n: (draw(_pos), draw(_pos), draw(_perf)) for n in names})


@st.composite
def alphas(draw) -> tuple[float, float, float, float]:
    raw = [draw(st.floats(0.0, 1.0)) for _ in range(4)]
    total = sum(raw)
    if total == 0:
        return (0.25, 0.25, 0.25, 0.25)
    a = [x / total for x in raw[:3]]
    return (*a, max(0.0, 1.0 - sum(a)))  # type: ignore[return-value]


@given(base=eval_results(), a=alphas(), k=st.floats(0.1, 50.0))
def test_no_change_is_half_plus_alpha4_times_d_for_any_profile(base, a, k) -> None:
    params = ScoreParams(k=k, alphas=a)
    d, _ = diversity(base, params)
    assert no_change_score(base, params) == pytest.approx(
        0.5 * (a[0] + a[1] + a[2]) + a[3] * d, abs=1e-12
    )


@given(base=eval_results(), cand=eval_results(), a=alphas(), dist=st.floats(0.0, 10.0))
def test_every_score_lies_in_the_unit_interval(base, cand, a, dist) -> None:
    got = compute_score(base, cand, relative_distance=dist, params=ScoreParams(alphas=a))
    for value in (got.P, got.L, got.D, got.S):
        assert 0.0 <= value <= 1.0
    assert 0.0 <= got.W <= 0.5  # any change costs weight-distance credit


@given(cand=eval_results(), better=st.floats(0.01, 0.99))
def test_a_lower_perplexity_raises_p(cand, better) -> None:
    improved = result(
        **{n: (t.ppl * better, t.answer_loss, t.acc_choice) for n, t in cand.tasks.items()}
    )
    base = result(**{n: (t.ppl, t.answer_loss, t.acc_choice) for n, t in cand.tasks.items()})
    p_same = compute_score(base, base, relative_distance=0, params=PARAMS).P
    p_better = compute_score(base, improved, relative_distance=0, params=PARAMS).P
    assert p_better > p_same


def test_d_is_one_when_performance_follows_the_weights_and_clamps_at_zero() -> None:
    params = ScoreParams(task_weights={"a": 3, "b": 1}, eps=1e-9)
    proportional = result(a=(1, 1, 0.75), b=(1, 1, 0.25))
    assert diversity(proportional, params)[0] == pytest.approx(1.0, abs=1e-6)
    # uniform p, q ≈ (1, 0): KL = 0.5·ln(0.5/0.999) + 0.5·ln(0.5/0.000999) ≈ 2.76 > 1 → D = 0
    lopsided = result(a=(1, 1, 1.0), b=(1, 1, 0.0))
    d, kl = diversity(lopsided, ScoreParams(eps=1e-3))
    assert kl == pytest.approx(
        0.5 * math.log(0.5 / (1.001 / 1.002)) + 0.5 * math.log(0.5 / (0.001 / 1.002)), rel=1e-12
    )
    assert kl > 1 and d == 0.0


def test_d_can_read_letter_accuracy_instead() -> None:
    base = result(a=(1, 1, 1.0), b=(1, 1, 0.0))  # acc_letter is 0.99 on both tasks
    assert diversity(base, ScoreParams(performance="acc_letter"))[0] == pytest.approx(1.0)
    assert diversity(base, ScoreParams(performance="acc_choice"))[0] == 0.0


def test_task_weights_are_normalised_and_must_match_the_tasks() -> None:
    params = ScoreParams(task_weights={"a": 3.0, "b": 1.0})
    got = compute_score(BASE, CAND, relative_distance=0.0, params=params)
    # 0.75·0.2 + 0.25·(−0.1) = 0.125
    assert got.ppl_gain == pytest.approx(0.125, abs=1e-15)
    with pytest.raises(ScoreError, match="task weights name"):
        compute_score(BASE, CAND, relative_distance=0.0, params=ScoreParams(task_weights={"a": 1}))
    with pytest.raises(ScoreError, match="non-negative"):
        ScoreParams(task_weights={"a": -1.0, "b": 2.0})


def test_base_and_candidate_must_cover_the_same_tasks() -> None:
    with pytest.raises(ScoreError, match="different tasks"):
        compute_score(BASE, result(a=(1, 1, 1)), relative_distance=0.0, params=PARAMS)


@pytest.mark.parametrize(
    ("alphas", "message"),
    [
        ((0.5, 0.5, 0.5, -0.5), r"\[0, 1\]"),
        ((1.5, -0.5, 0.0, 0.0), r"\[0, 1\]"),
        ((0.3, 0.3, 0.3, 0.3), "sum to 1"),
        ((0.5, 0.5, 0.0), "four numbers"),
    ],
)
def test_alphas_are_validated(alphas, message: str) -> None:
    with pytest.raises(ScoreError, match=message):
        ScoreParams(alphas=alphas)


@pytest.mark.parametrize("k", [0.0, -1.0, math.inf, math.nan])
def test_k_must_be_positive_and_finite(k: float) -> None:
    with pytest.raises(ScoreError, match="k must be"):
        ScoreParams(k=k)


def test_default_k_makes_small_relative_changes_visible() -> None:
    # a 5% perplexity gain: k=1 gives σ(0.05) = 0.5125, barely off 0.5; k=10 gives 0.62
    assert ScoreParams().k == 10.0
    assert sigmoid(0.05, 1.0) == pytest.approx(0.5125, abs=1e-4)
    assert sigmoid(0.05) == pytest.approx(0.6225, abs=1e-4)


def test_a_broken_candidate_scores_zero_p_and_nan_is_refused() -> None:
    broken = result(a=(math.inf, math.inf, 0.0), b=(math.inf, math.inf, 0.0))
    got = compute_score(BASE, broken, relative_distance=0.1, params=PARAMS)
    assert got.P == 0.0 and got.L == 0.0
    with pytest.raises(ScoreError, match="invalid"):
        compute_score(
            BASE, result(a=(math.nan, 1, 0), b=(1, 1, 0)), relative_distance=0, params=PARAMS
        )
    with pytest.raises(ScoreError, match="relative_distance"):
        compute_score(BASE, CAND, relative_distance=-0.1, params=PARAMS)


def test_sigmoid_is_stable_at_the_extremes() -> None:
    assert sigmoid(-1e6) == 0.0 and sigmoid(1e6) == 1.0
    assert sigmoid(0.0) == 0.5
    assert sigmoid(-math.inf) == 0.0 and sigmoid(math.inf) == 1.0


def test_params_are_immutable_and_hashable() -> None:
    params = ScoreParams(task_weights={"b": 1.0, "a": 1.0})
    assert hash(params) == hash(ScoreParams(task_weights={"a": 2.0, "b": 2.0}))
    with pytest.raises(AttributeError):
        params.k = 1.0  # type: ignore[misc]


# --------------------------------------------------------------------------- reward


def test_reward_matches_the_formula_above_the_threshold() -> None:
    # R = 100·(e^(2·0.5·0.8) − 1) = 100·(e^0.8 − 1)
    got = reward_amount(0.8, base_reward=100.0, beta=2.0, t=0.5, threshold=0.6)
    assert got == pytest.approx(100 * (math.exp(0.8) - 1), rel=1e-15)
    assert got == pytest.approx(122.55409284924679, rel=1e-15)


def test_reward_is_zero_at_or_below_the_threshold() -> None:
    kwargs = {"base_reward": 100.0, "beta": 2.0, "t": 1.0, "threshold": 0.6}
    assert reward_amount(0.6, **kwargs) == 0.0
    assert reward_amount(0.3, **kwargs) == 0.0
    assert reward_amount(0.6000001, **kwargs) > 0.0


def test_a_no_change_submission_earns_nothing_with_a_baseline_threshold() -> None:
    baseline = no_change_score(BASE, PARAMS)
    assert reward_amount(baseline, base_reward=1.0, beta=1.0, t=1.0, threshold=baseline) == 0.0


@given(s=st.floats(0.0, 1.0), s2=st.floats(0.0, 1.0))
def test_reward_grows_with_the_score(s: float, s2: float) -> None:
    lo, hi = sorted((s, s2))
    kw = {"base_reward": 10.0, "beta": 1.5, "t": 2.0, "threshold": -1.0}
    assert reward_amount(lo, **kw) <= reward_amount(hi, **kw)


@pytest.mark.parametrize(
    ("score", "kwargs", "message"),
    [
        (1.2, {}, r"\[0, 1\]"),
        (math.nan, {}, "finite"),
        (0.5, {"base_reward": -1.0}, "base_reward"),
        (0.5, {"beta": 1e6, "t": 1e6}, "overflows"),
    ],
)
def test_reward_rejects_bad_input(score, kwargs, message: str) -> None:
    args = {"base_reward": 1.0, "beta": 1.0, "t": 1.0, "threshold": 0.0, **kwargs}
    with pytest.raises(ScoreError, match=message):
        reward_amount(score, **args)


def test_the_reward_and_score_import_without_torch() -> None:
    code = "import sys, mergenet.evaluator.score; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- weight distance


def test_relative_distance_by_hand() -> None:
    base = {"a": torch.tensor([3.0]), "b": torch.tensor([4.0]), "steps": torch.tensor([7])}
    cand = {"a": torch.tensor([3.0]), "b": torch.tensor([4.5]), "steps": torch.tensor([9])}
    # ‖(0, 0.5)‖ / ‖(3, 4)‖ = 0.5/5; the integer buffer is not a weight and is skipped
    assert relative_distance_between(cand, base) == pytest.approx(0.1, abs=1e-15)
    assert relative_delta_norm({"b": torch.tensor([0.5])}, base) == pytest.approx(0.1, abs=1e-15)
    assert relative_distance_between(base, base) == 0.0


def test_distance_accumulates_in_float64() -> None:
    # 65,536 float16 weights of 2 moved by 2^-8: ‖δ‖² = 65536·2^-16 = 1, ‖θ‖² = 65536·4 = 512²;
    # a float16 accumulator would overflow (65536·4 > 65504) and lose the tiny differences
    base = {"w": torch.full((256, 256), 2.0, dtype=torch.float16)}
    cand = {"w": base["w"] + torch.tensor(2.0**-8, dtype=torch.float16)}
    assert relative_distance_between(cand, base) == 1 / 512
    delta = {"w": torch.full((256, 256), 2.0**-8, dtype=torch.bfloat16)}
    assert relative_delta_norm(delta, base) == 1 / 512


def test_distance_refuses_mismatched_or_broken_state_dicts() -> None:
    base = {"a": torch.ones(2, 2)}
    with pytest.raises(ScoreError, match="state dicts differ"):
        relative_distance_between({"b": torch.ones(2, 2)}, base)
    with pytest.raises(ScoreError, match="shape"):
        relative_distance_between({"a": torch.ones(4)}, base)
    with pytest.raises(ScoreError, match="non-finite"):
        relative_distance_between({"a": torch.full((2, 2), math.nan)}, base)
    with pytest.raises(ScoreError, match="zero norm"):
        relative_distance_between(base, {"a": torch.zeros(2, 2)})
    with pytest.raises(ScoreError, match="does not have"):
        relative_delta_norm({"z": torch.ones(1)}, base)
    with pytest.raises(ScoreError, match="shape"):
        relative_delta_norm({"a": torch.ones(3)}, base)


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(1e-4, 10.0), seed=st.integers(0, 1000))
def test_delta_and_full_forms_agree(scale: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    f64 = torch.float64  # float32 would round base+delta at ~1e-7/scale relative error
    base = {
        "x": torch.randn(8, 4, generator=gen, dtype=f64),
        "y": torch.randn(5, generator=gen, dtype=f64),
    }
    delta = {"x": scale * torch.randn(8, 4, generator=gen, dtype=f64)}
    full = {"x": base["x"] + delta["x"], "y": base["y"].clone()}
    assert relative_delta_norm(delta, base) == pytest.approx(
        relative_distance_between(full, base), rel=1e-9
    )
