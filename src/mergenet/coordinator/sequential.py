"""Confirmation as a sequential paired test: accept a candidate only when its gain is shown.

Why. Selection picks the best G among many candidates on one shared sample, so the winner's G
is biased upward (the winner's curse); one more 16-row sample per task then decides on noise:
one flipped answer moves G by γ/160 = 0.0125, 2.5 margins. Confirmation therefore draws fresh
batches (new private rows, :mod:`mergenet.coordinator.decision_rows`) for the same candidate
and compares it with its parent *item by item on the same rows*, where most of the sampling
noise cancels.

The statistic. Each batch b is one confirmation evaluation: its gain G_b (exactly the loop's
G = ΔS + γ·ΔA, :func:`mergenet.coordinator.acceptance.score_outcome`) and the variance of G_b's
noisy part from the per-item paired differences (``TaskResult.correct``/``item_loss``):

    Var_A = γ² Σ_t w_t² s²(c_f − c_p)_t / n_t                       (accuracy rows)
    Var_L = (α₂·k·σ'(x))² Σ_t w_t² s²(l_p − l_f)_t / (m_t · L_p,t²)  (answer-loss rows)
    SE_b  = √Var_A + √Var_L

where s² is the sample variance of the paired per-item difference and x the L term's argument,
so the loss part is S's L term linearised at the observed x. When a task's accuracy rows and
answer-loss rows are the same questions (n² ≥ held, so both are the whole drawn sample: every
confirmation at 64 rows per task), item i of ``correct`` and of ``item_loss`` is one question
(both are prefixes of one permutation, :func:`mergenet.evaluator.sampling.sample_for_scoring`)
and the two parts are summed per question first:

    SE_b² = Σ_t s²(w_t·(γ·(c_f − c_p) + κ·(l_p − l_f)/L_p,t))_t / n_t,   κ = α₂·k·σ'(x)

which counts their correlation exactly. Otherwise (a selection sample, n < m) √Var_A + √Var_L
bounds the SE whatever the correlation, conservatively. On paired world batches the two parts
are far from perfectly correlated, so the joint SE is smaller than the bound: the test gains
power at the same α (the bound had made K = 4 batches show only Ĝ ≳ 0.055). P and D move with
the same items and are left out of the variance. Over B batches: Ĝ = mean G_b,
SE = √(Σ SE_b²)/B.

The decision after each batch (``alpha`` = α, ``max_batches`` = K, ``margin`` as selection's):

* accept when p = 1 − Φ((Ĝ − margin)/SE) < α/K (Bonferroni over the K looks, so the chance
  of accepting a candidate whose true gain is at most the margin stays below α overall);
* reject when the upper bound Ĝ + z_{1−α}·SE < margin (clearly not better);
* reject at the K-th batch when neither held ("not shown"); otherwise draw another batch.

A no-change candidate (the parent itself, a contribution at weight 0) has every paired
difference 0: SE = 0, Ĝ = 0 < margin, rejected after one batch. A batch without per-item
results (recorded by an older worker) falls back to the single-sample rule: accept iff
G > margin. Measured on the world (``benchmarks/acceptance_power.py``, README "Acceptance"):
no-change 0 of 3 accepted after 1 batch each; all eight at 0.12 (held-out +0.011) 1 of 3
accepted, 3.67 batches on average: a batch's SE is ~0.043, so K = 4 shows only Ĝ ≳ 0.055.

Everything is recomputed from the recorded confirmation evaluations (their result JSON holds
the per-item results), so a restart mid-sequence resumes at the next batch and no state lives
in memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from statistics import NormalDist, variance
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mergenet.coordinator import models as m
from mergenet.coordinator.settings import LoopSettings
from mergenet.coordinator.status import Purpose
from mergenet.evaluator.score import ScoreParams, relative_gain, sigmoid
from mergenet.protocol.results import EvalResult, TaskResult

_NORMAL = NormalDist()


class Verdict(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    CONTINUE = "continue"


@dataclass(frozen=True)
class Batch:
    """One confirmation evaluation: its gain G and the SE of G's noise (None: no per-item data)."""

    gain: float
    se: float | None


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    gain: float
    """Ĝ, the mean gain over the batches so far."""
    se: float
    p_value: float
    upper: float
    """Ĝ + z_{1−α}·SE."""
    batches: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (PostgreSQL's JSON rejects NaN: a number not computed is None)."""
        d = {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in asdict(self).items()
        }
        return d | {"verdict": str(self.verdict)}


def _var(values: Sequence[float]) -> float:
    return variance(values) if len(values) > 1 else 0.0


def _consistent(r: TaskResult) -> bool:
    """Per-item results that agree with the task's own aggregates (a worker cannot shrink the
    SE with made-up items without also changing the numbers the trust checks compare)."""
    return (
        len(r.correct) == r.n_rows > 0
        and len(r.item_loss) == r.n_loss_rows > 0
        and abs(sum(r.correct) / r.n_rows - r.acc_choice) < 1e-9
        and all(math.isfinite(x) and x >= 0 for x in r.item_loss)
    )


def batch_se(
    parent: EvalResult, candidate: EvalResult, params: ScoreParams, accuracy_weight: float
) -> float | None:
    """SE of G's noisy part on one batch from the paired per-item differences (module doc);
    None when either result lacks per-item data, or it disagrees with the aggregates."""
    tasks = sorted(parent.tasks)
    weights = params.weights_for(tasks)
    x = relative_gain(parent, candidate, "answer_loss", weights)
    slope = params.alphas[1] * params.k * sigmoid(x, params.k) * (1 - sigmoid(x, params.k))
    var_a = var_l = var_joint = 0.0
    for t in tasks:
        p, c = parent.tasks[t], candidate.tasks.get(t)
        if c is None or not (_consistent(p) and _consistent(c)):
            return None
        if len(c.correct) != len(p.correct) or len(c.item_loss) != len(p.item_loss):
            return None
        w = weights[t]
        dc = [float(b) - float(a) for a, b in zip(p.correct, c.correct, strict=True)]
        dl = [a - b for a, b in zip(p.item_loss, c.item_loss, strict=True)]
        inv_loss = 1.0 / p.answer_loss if p.answer_loss > 0 else 0.0
        var_a += w * w * _var(dc) / len(dc)
        var_l += w * w * _var(dl) * inv_loss**2 / len(dl)
        if len(dc) == len(dl):  # item i of both lists is one question: one paired sum
            joint = [
                w * (accuracy_weight * a + slope * b * inv_loss)
                for a, b in zip(dc, dl, strict=True)
            ]
            var_joint += _var(joint) / len(joint)
        else:
            var_joint = math.nan
    if math.isfinite(var_joint):
        se = math.sqrt(var_joint)
    else:
        se = accuracy_weight * math.sqrt(var_a) + slope * math.sqrt(var_l)
    return se if math.isfinite(se) else None


def decide(batches: Sequence[Batch], margin: float, alpha: float, max_batches: int) -> Decision:
    """The sequential decision after ``batches`` (module doc); at least one batch."""
    if not batches:
        raise ValueError("no confirmation batch to decide on")
    n = len(batches)
    gain = sum(b.gain for b in batches) / n
    if any(b.se is None for b in batches):  # an older worker: the single-sample rule
        ok = batches[-1].gain > margin
        verdict = Verdict.ACCEPT if ok else Verdict.REJECT
        return Decision(verdict, batches[-1].gain, math.nan, math.nan, math.nan, n, "no items")
    se = math.sqrt(sum((b.se or 0.0) ** 2 for b in batches)) / n
    p = 1.0 - _NORMAL.cdf((gain - margin) / se) if se > 0 else float(gain <= margin)
    upper = gain + _NORMAL.inv_cdf(1.0 - alpha) * se
    cap = max(1, max_batches)
    if p < alpha / cap:
        verdict, reason = Verdict.ACCEPT, f"p {p:.2g} < α/K {alpha / cap:.2g}"
    elif upper < margin:
        verdict, reason = Verdict.REJECT, f"upper bound {upper:.4f} < margin {margin}"
    elif n >= cap:
        verdict, reason = Verdict.REJECT, f"not shown after {n} batches (p {p:.2g})"
    else:
        verdict, reason = Verdict.CONTINUE, f"p {p:.2g}, upper bound {upper:.4f}"
    return Decision(verdict, gain, se, p, upper, n, reason)


def recorded_batches(
    s: Session, candidate_id: int, params: ScoreParams, accuracy_weight: float
) -> list[Batch]:
    """Every recorded confirmation batch of a candidate, oldest first (restart-safe)."""
    rows = s.scalars(
        select(m.Evaluation)
        .where(
            m.Evaluation.candidate_id == candidate_id,
            m.Evaluation.purpose == Purpose.CONFIRMATION,
        )
        .order_by(m.Evaluation.id)
    )
    out = []
    for e in rows:
        parent, cand = EvalResult.from_dict(e.parent_result), EvalResult.from_dict(e.result)
        out.append(Batch(e.gain, batch_se(parent, cand, params, accuracy_weight)))
    return out


def decide_recorded(s: Session, candidate_id: int, settings: LoopSettings) -> Decision:
    """The decision on a candidate's recorded confirmation batches, with the loop's settings."""
    cfg = settings
    batches = recorded_batches(s, candidate_id, cfg.score, cfg.accuracy_weight)
    return decide(batches, cfg.margin, cfg.confirm_alpha, cfg.confirm_max_batches)


def seed_recorded(s: Session, candidate_id: int, seed: int) -> bool:
    """Whether this confirmation batch is recorded already (a duplicate after a restart)."""
    return (
        s.scalar(
            select(m.Evaluation.id).where(
                m.Evaluation.candidate_id == candidate_id,
                m.Evaluation.purpose == Purpose.CONFIRMATION,
                m.Evaluation.sample_seed == seed,
            )
        )
        is not None
    )
