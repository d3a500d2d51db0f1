"""The seed paper's score (§2): P, L, W, D combined into S, and the reward R.

With σ(x) = 1/(1 + e^(−kx)) and task weights w (Σw = 1):

* P = σ(Σ w_i (PPL_b,i − PPL_f,i)/PPL_b,i)   perplexity, relative improvement
* L = σ(Σ w_i (L_b,i − L_f,i)/L_b,i)         answer loss over the n² sample
* W = 1 − σ(‖θ_f − θ_b‖₂/‖θ_b‖₂)             weight distance (≤ 0.5, = 0.5 only for no change)
* D = clamp(1 − KL(p‖q), 0, 1)               p = w, q = candidate's per-task performance
* S = α₁P + α₂L + α₃W + α₄D                  α ∈ [0,1], Σα = 1, so S ∈ [0,1]
* R = R_b (e^(β t S) − 1) if S > threshold else 0

A candidate identical to its base scores P = L = W = 0.5 (σ(0)), so S_no-change =
0.5(α₁+α₂+α₃) + α₄D(base): thresholds and acceptance must be read relative to
:func:`no_change_score`, not relative to 0. See docs/score.md.

This module imports torch only inside the weight-distance functions, so the rewards ledger
and the web page can import :func:`reward_amount` and :func:`compute_score` cheaply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mergenet.errors import InvalidInput
from mergenet.protocol.results import PRIMARY_ACCURACY, EvalResult

if TYPE_CHECKING:
    import torch

DEFAULT_K = 10.0
DEFAULT_ALPHAS = (0.25, 0.25, 0.25, 0.25)
PERFORMANCE_ATTRS = (PRIMARY_ACCURACY, "acc_letter")


class ScoreError(InvalidInput):
    """Score inputs or parameters that cannot give a meaningful score."""


def sigmoid(x: float, k: float = DEFAULT_K) -> float:
    """σ(x) = 1/(1+e^(−kx)), numerically stable for any x including ±inf."""
    z = k * x
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True)
class ScoreParams:
    """Parameters of S.

    ``k`` defaults to 10: the P, L and W arguments are *relative* changes, which for a merge
    are typically a few percent; with k = 1, σ(0.05) = 0.5125 and every candidate would score
    ~0.5, while k = 10 gives slope k/4 = 2.5 around 0 (σ(0.05) = 0.62) and saturates only for
    changes of ~30% or more (σ(10·0.3) = 0.95).

    ``task_weights`` are the p_τ of D and the w_i of P and L. None means uniform over the
    tasks present; given weights must be non-negative, cover exactly the scored tasks, and
    are normalised to sum 1. ``performance`` names the TaskResult field that D normalises
    into q (``acc_choice`` by default: it moves before letter accuracy does in small models);
    ``eps`` is added to every task's performance so a task at 0 keeps KL finite.
    """

    k: float = DEFAULT_K
    alphas: tuple[float, float, float, float] = DEFAULT_ALPHAS
    task_weights: Mapping[str, float] | tuple[tuple[str, float], ...] | None = None
    performance: str = PRIMARY_ACCURACY
    eps: float = 1e-3

    def __post_init__(self) -> None:
        if not (math.isfinite(self.k) and self.k > 0):
            raise ScoreError(f"k must be a positive finite number, got {self.k!r}")
        alphas = tuple(float(a) for a in self.alphas)
        if len(alphas) != 4:
            raise ScoreError(f"alphas must be four numbers (α₁..α₄), got {len(alphas)}")
        if any(not (0.0 <= a <= 1.0) for a in alphas):
            raise ScoreError(f"every α must lie in [0, 1], got {alphas}")
        if abs(sum(alphas) - 1.0) > 1e-9:
            raise ScoreError(f"the α must sum to 1, got sum {sum(alphas)!r} for {alphas}")
        object.__setattr__(self, "alphas", alphas)
        if self.performance not in PERFORMANCE_ATTRS:
            raise ScoreError(f"performance must be one of {PERFORMANCE_ATTRS}")
        if not (math.isfinite(self.eps) and self.eps > 0):
            raise ScoreError(f"eps must be a small positive number, got {self.eps!r}")
        if self.task_weights is not None:
            w = dict(self.task_weights)
            if any(not (math.isfinite(v) and v >= 0) for v in w.values()) or sum(w.values()) <= 0:
                raise ScoreError(f"task weights must be non-negative with a positive sum: {w}")
            total = sum(w.values())
            # a sorted tuple of pairs keeps the frozen dataclass hashable and immutable
            object.__setattr__(
                self, "task_weights", tuple(sorted((t, v / total) for t, v in w.items()))
            )

    def weights_for(self, tasks: list[str]) -> dict[str, float]:
        """Normalised weights over ``tasks`` (uniform unless set); error if they disagree."""
        if not tasks:
            raise ScoreError("no tasks to score")
        if self.task_weights is None:
            return {t: 1.0 / len(tasks) for t in tasks}
        w = dict(self.task_weights)
        if set(w) != set(tasks):
            raise ScoreError(f"task weights name {sorted(w)} but the results hold {sorted(tasks)}")
        return w


@dataclass(frozen=True)
class ScoreBreakdown:
    """The four metrics and S, plus the raw arguments behind them (for reports)."""

    P: float
    L: float
    W: float
    D: float
    S: float
    ppl_gain: float = 0.0
    loss_gain: float = 0.0
    relative_distance: float = 0.0
    kl: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- terms


def _tasks(base: EvalResult, candidate: EvalResult) -> list[str]:
    if set(base.tasks) != set(candidate.tasks):
        raise ScoreError(
            f"base and candidate were scored on different tasks: "
            f"{sorted(base.tasks)} vs {sorted(candidate.tasks)}"
        )
    return sorted(base.tasks)


def relative_gain(
    base: EvalResult, candidate: EvalResult, attr: str, weights: Mapping[str, float]
) -> float:
    """Σ w_i (b_i − f_i)/b_i for a lower-is-better field (``ppl`` or ``answer_loss``).

    A candidate value of +inf (a broken model) is allowed and gives −inf; NaN is an error,
    as is a base value that is not positive and finite.
    """
    total = 0.0
    for task, w in weights.items():
        if w == 0:
            continue
        b = getattr(base.tasks[task], attr)
        f = getattr(candidate.tasks[task], attr)
        if not (math.isfinite(b) and b > 0):
            raise ScoreError(f"base {attr} for task {task!r} must be positive and finite: {b!r}")
        if math.isnan(f) or f < 0:
            raise ScoreError(f"candidate {attr} for task {task!r} is invalid: {f!r}")
        total += w * (b - f) / b
    return total


def kl_divergence(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """KL(p‖q) = Σ p_i log(p_i/q_i), with 0·log(0/q) = 0."""
    return sum(pi * math.log(pi / q[t]) for t, pi in p.items() if pi > 0)


def performance_distribution(
    result: EvalResult, tasks: list[str], attr: str, eps: float
) -> dict[str, float]:
    """q: per-task performance plus ``eps``, normalised to sum 1."""
    vals = {}
    for t in tasks:
        v = getattr(result.tasks[t], attr)
        if not (math.isfinite(v) and v >= 0):
            raise ScoreError(f"{attr} for task {t!r} must be a finite number >= 0: {v!r}")
        vals[t] = v + eps
    total = sum(vals.values())
    return {t: v / total for t, v in vals.items()}


def diversity(result: EvalResult, params: ScoreParams) -> tuple[float, float]:
    """(D, KL) for one evaluation: D = clamp(1 − KL(p‖q), 0, 1)."""
    tasks = sorted(result.tasks)
    p = params.weights_for(tasks)
    q = performance_distribution(result, tasks, params.performance, params.eps)
    kl = kl_divergence(p, q)
    return min(1.0, max(0.0, 1.0 - kl)), kl


def compute_score(
    base: EvalResult,
    candidate: EvalResult,
    *,
    relative_distance: float,
    params: ScoreParams,
) -> ScoreBreakdown:
    """S of ``candidate`` against ``base`` (both scored on the same rows).

    ``relative_distance`` is ‖θ_f − θ_b‖₂/‖θ_b‖₂ (see :func:`relative_distance_between` and
    :func:`relative_delta_norm`); it is passed in so that scoring never needs the weights.
    """
    if not (math.isfinite(relative_distance) and relative_distance >= 0):
        raise ScoreError(f"relative_distance must be finite and >= 0, got {relative_distance!r}")
    tasks = _tasks(base, candidate)
    w = params.weights_for(tasks)
    ppl_gain = relative_gain(base, candidate, "ppl", w)
    loss_gain = relative_gain(base, candidate, "answer_loss", w)
    p_term = sigmoid(ppl_gain, params.k)
    l_term = sigmoid(loss_gain, params.k)
    w_term = 1.0 - sigmoid(relative_distance, params.k)
    d_term, kl = diversity(candidate, params)
    a1, a2, a3, a4 = params.alphas
    s = a1 * p_term + a2 * l_term + a3 * w_term + a4 * d_term
    return ScoreBreakdown(
        P=p_term,
        L=l_term,
        W=w_term,
        D=d_term,
        S=min(1.0, max(0.0, s)),  # only rounding can push a convex mix of [0,1] values out
        ppl_gain=ppl_gain,
        loss_gain=loss_gain,
        relative_distance=relative_distance,
        kl=kl,
    )


def no_change_score(base: EvalResult, params: ScoreParams) -> float:
    """S of a candidate identical to ``base``: 0.5(α₁+α₂+α₃) + α₄·D(base).

    This is the baseline every threshold and acceptance rule must be stated against: a
    candidate is an improvement only if its S exceeds this value.
    """
    return compute_score(base, base, relative_distance=0.0, params=params).S


# --------------------------------------------------------------------------- reward


def reward_amount(
    score: float, *, base_reward: float, beta: float, t: float, threshold: float
) -> float:
    """R = R_b·(e^(β·t·S) − 1) if S > threshold else 0.

    ``threshold`` should sit above :func:`no_change_score` (a no-change submission must earn
    nothing). Uses expm1 so small β·t·S keep their precision.
    """
    for name, v in (
        ("score", score),
        ("base_reward", base_reward),
        ("beta", beta),
        ("t", t),
        ("threshold", threshold),
    ):
        if not math.isfinite(v):
            raise ScoreError(f"{name} must be finite, got {v!r}")
    if not 0.0 <= score <= 1.0:
        raise ScoreError(f"score must lie in [0, 1], got {score!r}")
    if base_reward < 0:
        raise ScoreError(f"base_reward must be >= 0, got {base_reward!r}")
    if score <= threshold:
        return 0.0
    try:
        return base_reward * math.expm1(beta * t * score)
    except OverflowError as exc:
        raise ScoreError(f"reward overflows: beta·t·S = {beta * t * score!r} is too large") from exc


# --------------------------------------------------------------------------- weight distance


def _sq_norms(
    a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor] | None, name: str
) -> tuple[float, float]:
    """(‖a − b‖², ‖b‖²) for one tensor name, accumulated in float64 (‖a‖² and 0 if b None)."""
    import torch

    x = a[name]
    if not torch.is_floating_point(x):
        return 0.0, 0.0
    x64 = x.detach().to(device="cpu", dtype=torch.float64)
    if not torch.isfinite(x64).all():
        raise ScoreError(f"tensor {name!r} holds non-finite values")
    if b is None:
        return float(torch.dot(x64.flatten(), x64.flatten())), 0.0
    y64 = b[name].detach().to(device="cpu", dtype=torch.float64)
    if x64.shape != y64.shape:
        raise ScoreError(f"tensor {name!r}: shape {tuple(x64.shape)} vs {tuple(y64.shape)}")
    d = (x64 - y64).flatten()
    return float(torch.dot(d, d)), float(torch.dot(y64.flatten(), y64.flatten()))


def _base_sq_norm(base: Mapping[str, torch.Tensor]) -> float:
    return sum(_sq_norms(base, None, name)[0] for name in base)


def relative_distance_between(
    candidate: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor]
) -> float:
    """‖θ_f − θ_b‖₂/‖θ_b‖₂ over all floating-point tensors (integer buffers are skipped).

    Streams tensor by tensor with float64 accumulators, so a lazily loading mapping keeps at
    most two tensors (and their float64 copies) in memory.
    """
    if set(candidate) != set(base):
        missing, extra = sorted(set(base) - set(candidate)), sorted(set(candidate) - set(base))
        raise ScoreError(f"state dicts differ: missing {missing[:5]}, unexpected {extra[:5]}")
    distance = RelativeDistance()
    for name in base:
        distance.add(name, candidate[name], base[name])
    return distance.value()


class RelativeDistance:
    """‖θ_f − θ_b‖₂/‖θ_b‖₂ summed one tensor at a time, for a merge that never holds both
    whole models (the evaluation worker): ``add`` in the base's order gives exactly the float
    :func:`relative_distance_between` returns (same float64 sums, same order)."""

    def __init__(self) -> None:
        self.diff = 0.0
        self.ref = 0.0

    def add(self, name: str, candidate: torch.Tensor, base: torch.Tensor) -> None:
        """Raises ``ScoreError`` for a non-finite candidate tensor or a shape mismatch."""
        d, r = _sq_norms({name: candidate}, {name: base}, name)
        self.diff += d
        self.ref += r

    def value(self) -> float:
        if self.ref <= 0:
            raise ScoreError("the base weights have zero norm")
        return math.sqrt(self.diff) / math.sqrt(self.ref)


def relative_delta_norm(
    delta: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor]
) -> float:
    """‖δ‖₂/‖θ_b‖₂ for a delta (θ_f = θ_b + δ); the delta may cover a subset of tensors."""
    unknown = sorted(set(delta) - set(base))
    if unknown:
        raise ScoreError(f"delta names tensors the base does not have: {unknown[:5]}")
    import torch

    num = 0.0
    for name in delta:
        if tuple(delta[name].shape) != tuple(base[name].shape):
            raise ScoreError(
                f"tensor {name!r}: delta shape {tuple(delta[name].shape)} "
                f"vs base {tuple(base[name].shape)}"
            )
        if torch.is_floating_point(delta[name]):
            num += _sq_norms(delta, None, name)[0]
    ref = _base_sq_norm(base)
    if ref <= 0:
        raise ScoreError("the base weights have zero norm")
    return math.sqrt(num) / math.sqrt(ref)
