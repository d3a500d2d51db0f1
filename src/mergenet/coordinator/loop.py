"""The asynchronous evolutionary merge loop (seed paper Algorithms 1 and 2), driven by the DB.

Each call of :meth:`EvolutionLoop.step` fills the pool's free slots and records whatever
finished; there is no generation barrier. Work is taken in this order:

1. **score new contributions**: current + δ (weight 1) against current on a fresh sample; S
   is stored (and rewarded when a chain is configured); the contribution joins the merge pool
   when it lowers the answer loss of at least one task by ``pool_min_task_gain`` (relative) —
   contributors forget other tasks, so their overall S may be below the baseline and they are
   still exactly what a merge needs;
2. **confirm** candidates that passed selection, on a fresh sample;
3. re-dispatch candidates queued before a restart;
4. **propose** a new candidate on the current version: strategy s ~ H(s), then a single,
   multi, crossover or mutation recipe (:mod:`mergenet.coordinator.proposals`).

The gain. Let ΔS = S − S_0, where S is the candidate's score against the current version and
S_0 the no-change score on the same rows (:func:`mergenet.evaluator.score.no_change_score`),
and ΔA the change of macro ``acc_choice`` on those rows. The loop's gain is

    G = ΔS + γ·ΔA        (γ = ``accuracy_weight``, default 2)

Why not ΔS alone: S's L term is the answer *loss*, and a fine-tune makes the model confident
on its own task while the loss of the others rises, so merges that answer more questions
right often score ΔS < 0. Measured on the world (29 task-arithmetic candidates, one dev
sample of 16 rows per task against the full held-out set): ΔS ranks candidates with Spearman
ρ 0.30 against held-out accuracy, the sample's accuracy 0.66, and G at γ = 2 0.52 while
keeping S's guard against drifting far (W) and against uneven task profiles (D).

Acceptance rule (the guard against accepting noise). A candidate is accepted as the new core
version only if

* on the version's **selection sample** (one seeded sample shared by every candidate built on
  that version, so they are compared on the same rows) G > ``margin`` and G is at least the
  best G of any not-rejected candidate on this version, and then
* on a **fresh sample** drawn at confirmation time, G > ``margin`` again.

``margin`` defaults to 0.005 (S_0 ≈ 0.6 on the world), above the spread of ΔS between two
samples of the same candidate (measured ~0.002); one answer flipped on a 16-row task moves
G by γ/160 = 0.0125, so a confirmed candidate got more answers right on two samples.
A candidate that fails confirmation is ``rejected``; a confirmed candidate whose parent was
replaced in the meantime is rejected as stale. The base of every later candidate is the newest
accepted version.

Crash safety: every state change is one transaction; a version's weights are written to a
staging folder and renamed into the store before its row is committed; queued and confirming
candidates are plain rows, so a restart simply dispatches them again.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mergenet.coordinator import heuristic, proposals
from mergenet.coordinator import models as m
from mergenet.coordinator.artifacts import ArtifactStore
from mergenet.coordinator.db import transaction
from mergenet.coordinator.evaluation import EvalOutcome, EvalTask, EvaluationPool, SampleSpec
from mergenet.coordinator.state import (
    CONFIRMATION,
    CONTRIBUTION,
    EVOLUTION_KINDS,
    SELECTION,
    current_version,
    current_weights,
    evolution_evaluations,
)
from mergenet.evaluator.results import EvalResult
from mergenet.evaluator.score import ScoreParams, compute_score, no_change_score
from mergenet.merge_strategies import registry
from mergenet.merge_strategies.recipe import Recipe

log = logging.getLogger("mergenet.coordinator.loop")


def default_strategies() -> tuple[str, ...]:
    """Strategies with fused kernels that accept any number of deltas (the hot path)."""
    return tuple(s for s in registry.fast_strategies() if registry.get(s).min_deltas <= 1)


@dataclass
class LoopConfig:
    strategies: tuple[str, ...] = field(default_factory=default_strategies)
    beta: float = 20.0
    """H(s) ← H(s)·exp(β·ΔS); ΔS is typically ±0.01–0.1, so β = 20 moves H visibly."""
    floor: float = 0.03
    sample_n: int = 16
    rows: str = "dev"
    confirm_rows: str = "dev"
    margin: float = 0.005
    top_k: int = 4
    p_mutation: float = 0.15
    p_crossover: float = 0.35
    p_single: float = 0.15
    pool_min_task_gain: float = 0.02
    accuracy_weight: float = 2.0
    """γ of the gain G = ΔS + γ·ΔA (module docstring); 0 ranks by the paper's ΔS alone."""
    seed: int = 0
    max_evaluations: int = 0
    """Stop proposing after this many selection+confirmation evaluations (0 = never)."""
    score: ScoreParams = field(default_factory=ScoreParams)
    proposal: proposals.ProposalConfig = field(default_factory=proposals.ProposalConfig)


class LoopHooks(Protocol):
    """Side effects outside the loop's tables (rewards, chain); called inside the transaction."""

    def contribution_scored(self, session: Session, contribution: m.Contribution) -> None: ...

    def version_accepted(self, session: Session, version: m.Version) -> None: ...


ACCURACY = "acc_choice"
DEFAULT_ACCURACY_WEIGHT = 2.0


@dataclass(frozen=True)
class Scored:
    score: float
    baseline: float
    gain: float
    """G = ΔS + γ·ΔA, what selection, acceptance and H(s) use."""
    breakdown: dict[str, Any]


def score_outcome(
    outcome: EvalOutcome,
    params: ScoreParams,
    accuracy_weight: float = DEFAULT_ACCURACY_WEIGHT,
) -> Scored:
    """S, S_0 and the gain G = (S − S_0) + γ·ΔA of a finished evaluation (same rows)."""
    parent, candidate = outcome.parent(), outcome.candidate()
    b = compute_score(parent, candidate, relative_distance=outcome.relative_distance, params=params)
    s0 = no_change_score(parent, params)
    accuracy_gain = candidate.macro(ACCURACY) - parent.macro(ACCURACY)
    breakdown = b.to_dict() | {
        "score_gain": b.S - s0,
        "accuracy_gain": accuracy_gain,
        "accuracy_weight": accuracy_weight,
    }
    return Scored(b.S, s0, b.S - s0 + accuracy_weight * accuracy_gain, breakdown)


def best_task_gain(parent: EvalResult, candidate: EvalResult) -> float:
    """The largest relative answer-loss improvement over tasks."""
    gains = [
        (p.answer_loss - candidate.tasks[t].answer_loss) / p.answer_loss
        for t, p in parent.tasks.items()
        if p.answer_loss > 0 and math.isfinite(candidate.tasks[t].answer_loss)
    ]
    return max(gains, default=0.0)


# --------------------------------------------------------------------------- state helpers


def _write_weights(session: Session, weights: dict[str, float], cause: int | None = None) -> int:
    step = (session.scalar(select(func.max(m.StrategyWeight.step))) or 0) + 1
    session.add_all(
        m.StrategyWeight(step=step, strategy=s, weight=w, cause_candidate_id=cause)
        for s, w in sorted(weights.items())
    )
    return step


def _counter(session: Session, key: str) -> int:
    """Increment and return a named counter (in the caller's transaction)."""
    row = session.get(m.LoopState, key)
    if row is None:
        row = m.LoopState(key=key, value="0")
        session.add(row)
    row.value = str(int(row.value) + 1)
    return int(row.value)


# --------------------------------------------------------------------------- the loop


class EvolutionLoop:
    """Algorithm 1 + 2 over the database; one instance per coordinator process."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        store: ArtifactStore,
        pool: EvaluationPool,
        config: LoopConfig | None = None,
        hooks: LoopHooks | None = None,
    ):
        self.factory = factory
        self.store = store
        self.pool = pool
        self.config = config or LoopConfig()
        self.hooks = hooks
        self._in_flight: set[int] = set()
        self.on_accept: Callable[[m.Version], None] | None = None
        with transaction(self.factory) as s:
            weights = current_weights(s)
            if set(weights) != set(self.config.strategies):
                _write_weights(s, heuristic.uniform(self.config.strategies))

    # -- scheduling ---------------------------------------------------------------------
    def step(self, timeout: float = 0.5) -> int:
        """Fill free slots, then record what finished within ``timeout``; returns that count."""
        self._fill()
        outcomes = self.pool.poll(timeout)
        for outcome in outcomes:
            self._record(outcome)
        return len(outcomes)

    def run(self, stop: threading.Event, idle: float = 0.5) -> None:
        while not stop.is_set():
            try:
                self.step(idle)
            except Exception:  # keep the coordinator alive; the failed step is retried
                log.exception("loop step failed")
                stop.wait(1.0)

    def idle(self) -> bool:
        return self.pool.in_flight() == 0

    def _fill(self) -> None:
        while self.pool.in_flight() < self.pool.capacity:
            task = self._next_task()
            if task is None:
                return
            self.pool.submit(task)

    def _dispatch(self, cand: m.Candidate, purpose: str, seed: int, rows: str) -> EvalTask:
        self._in_flight.add(cand.id)
        return EvalTask(
            key=f"{cand.id}:{purpose}:{seed}",
            recipe=cand.recipe,
            sample=SampleSpec(rows=rows, n=self.config.sample_n, seed=seed),
        )

    def _next_task(self) -> EvalTask | None:
        cfg = self.config
        with transaction(self.factory) as s:
            version = current_version(s)
            if version is None:
                return None
            busy = self._in_flight
            # 1. new contributions are scored first
            for c in s.scalars(
                select(m.Contribution)
                .where(m.Contribution.status == m.RECEIVED)
                .order_by(m.Contribution.id)
            ):
                cand = s.scalar(
                    select(m.Candidate).where(
                        m.Candidate.contribution_sha == c.sha256,
                        m.Candidate.kind == "contribution",
                        m.Candidate.status == m.QUEUED,
                        m.Candidate.parent_hash == version.hash,
                    )
                )
                if cand is not None and cand.id in busy:
                    continue
                if cand is None:
                    recipe = proposals.scoring_recipe(version.hash, c.sha256)
                    cand = self._new_candidate(
                        s, recipe, "contribution", secrets.randbits(62), c.sha256
                    )
                return self._dispatch(cand, CONTRIBUTION, cand.sample_seed, cfg.rows)
            # 2. confirmations (always on a fresh sample)
            for cand in s.scalars(
                select(m.Candidate)
                .where(m.Candidate.status == m.CONFIRMING)
                .order_by(m.Candidate.id)
            ):
                if cand.id not in busy:
                    return self._dispatch(
                        cand, CONFIRMATION, secrets.randbits(62), cfg.confirm_rows
                    )
            # 3. candidates queued before a restart
            for cand in s.scalars(
                select(m.Candidate)
                .where(m.Candidate.status == m.QUEUED, m.Candidate.kind.in_(EVOLUTION_KINDS))
                .order_by(m.Candidate.id)
            ):
                if cand.id in busy:
                    continue
                if cand.parent_hash != version.hash:
                    cand.status, cand.error = m.FAILED, "parent superseded before evaluation"
                    continue
                return self._dispatch(cand, SELECTION, cand.sample_seed, cfg.rows)
            # 4. a new proposal
            if cfg.max_evaluations and evolution_evaluations(s) + len(busy) >= cfg.max_evaluations:
                return None
            recipe, kind = self._propose(s, version)
            if recipe is None:
                return None
            single_sha = recipe.contributions[0].sha256 if kind == "single" else None
            cand = self._new_candidate(s, recipe, kind, version.selection_seed, single_sha)
            return self._dispatch(cand, SELECTION, cand.sample_seed, cfg.rows)

    def _new_candidate(
        self, s: Session, recipe: Recipe, kind: str, seed: int, contribution: str | None = None
    ) -> m.Candidate:
        c = recipe.canonical()
        cand = m.Candidate(
            parent_hash=c.parent,
            strategy=c.strategy,
            kind=kind,
            recipe=c.model_dump(mode="json", exclude_none=True),
            recipe_hash=c.sha256,
            contribution_sha=contribution,
            status=m.QUEUED,
            sample_seed=seed,
        )
        s.add(cand)
        s.flush()
        return cand

    # -- proposals ----------------------------------------------------------------------
    def _members(self, s: Session, parent: str, strategy: str | None) -> list[m.Candidate]:
        q = (
            select(m.Candidate)
            .where(
                m.Candidate.parent_hash == parent,
                m.Candidate.kind.in_(EVOLUTION_KINDS),
                m.Candidate.gain.is_not(None),
            )
            .order_by(m.Candidate.gain.desc(), m.Candidate.id)
        )
        if strategy is not None:
            q = q.where(m.Candidate.strategy == strategy)
        return list(s.scalars(q.limit(self.config.top_k)))

    def _propose(self, s: Session, version: m.Version) -> tuple[Recipe | None, str]:
        cfg = self.config
        pool = list(
            s.scalars(
                select(m.Contribution.sha256)
                .where(m.Contribution.in_pool.is_(True))
                .order_by(m.Contribution.id)
            )
        )
        if not pool:
            return None, ""
        n = _counter(s, "proposals")
        rng = np.random.default_rng([cfg.seed, n])
        weights = current_weights(s)
        strategy = heuristic.sample(weights, rng)
        parent = version.hash
        pc = cfg.proposal
        # every pool contribution is tried alone on the current version once: M(θ, δ_i, s)
        singles = set(
            s.scalars(
                select(m.Candidate.contribution_sha).where(
                    m.Candidate.parent_hash == parent, m.Candidate.kind == "single"
                )
            )
        )
        untried = [sha for sha in pool if sha not in singles]
        if untried:
            return proposals.single(strategy, parent, untried[0], rng, pc), "single"
        r = rng.random()
        best = self._members(s, parent, None)
        top = self._members(s, parent, strategy)
        if r < cfg.p_mutation and best and best[0].gain and best[0].gain > 0:
            return proposals.mutation(Recipe.model_validate(best[0].recipe), parent, rng, pc), (
                "mutation"
            )
        r -= cfg.p_mutation
        if r < cfg.p_crossover and len(top) >= 2:
            i, j = rng.choice(len(top), size=2, replace=False)
            a, b = (Recipe.model_validate(top[int(k)].recipe) for k in (i, j))
            return proposals.crossover(a, b, parent, rng, pc), "crossover"
        r -= cfg.p_crossover
        if r < cfg.p_single or len(pool) < 2:
            sha = pool[int(rng.integers(len(pool)))]
            return proposals.single(strategy, parent, sha, rng, pc), "single"
        return proposals.multi(strategy, parent, pool, rng, pc), "multi"

    # -- recording ------------------------------------------------------------------------
    def _record(self, outcome: EvalOutcome) -> None:
        cand_id_s, purpose, seed_s = outcome.key.split(":")
        cand_id, seed = int(cand_id_s), int(seed_s)
        self._in_flight.discard(cand_id)
        if outcome.error is not None:
            log.warning("evaluation %s failed: %s", outcome.key, outcome.error)
            with transaction(self.factory) as s:
                cand = s.get(m.Candidate, cand_id)
                if cand is None:
                    return
                cand.status, cand.error = m.FAILED, outcome.error[:2000]
                if cand.kind == "contribution":
                    c = s.scalar(
                        select(m.Contribution).where(m.Contribution.sha256 == cand.contribution_sha)
                    )
                    if c is not None:
                        c.status = m.FAILED
            return
        scored = score_outcome(outcome, self.config.score, self.config.accuracy_weight)
        if purpose == CONFIRMATION:
            self._record_confirmation(cand_id, seed, outcome, scored)
            return
        with transaction(self.factory) as s:
            cand = s.get(m.Candidate, cand_id)
            if cand is None or cand.status != m.QUEUED:
                return  # already recorded (a duplicate outcome after a restart)
            self._add_evaluation(s, cand, purpose, seed, outcome, scored)
            cand.score, cand.gain, cand.status = scored.score, scored.gain, m.DONE
            if purpose == CONTRIBUTION:
                self._record_contribution(s, cand, outcome, scored)
                return
            weights = (
                heuristic.update(
                    current_weights(s),
                    cand.strategy,
                    scored.gain,
                    beta=self.config.beta,
                    floor=self.config.floor,
                )
                if cand.strategy in self.config.strategies
                else None
            )
            if weights is not None:
                _write_weights(s, weights, cand.id)
            version = current_version(s)
            if (
                version is not None
                and cand.parent_hash == version.hash
                and scored.gain > self.config.margin
            ):
                rival = s.scalar(
                    select(func.max(m.Candidate.gain)).where(
                        m.Candidate.parent_hash == cand.parent_hash,
                        m.Candidate.kind.in_(EVOLUTION_KINDS),
                        m.Candidate.id != cand.id,
                        m.Candidate.status.in_((m.DONE, m.CONFIRMING, m.ACCEPTED)),
                    )
                )
                if rival is None or scored.gain >= rival:
                    cand.status = m.CONFIRMING

    def _add_evaluation(
        self,
        s: Session,
        cand: m.Candidate,
        purpose: str,
        seed: int,
        outcome: EvalOutcome,
        scored: Scored,
    ) -> None:
        s.add(
            m.Evaluation(
                candidate_id=cand.id,
                purpose=purpose,
                sample_seed=seed,
                result=outcome.result,
                parent_result=outcome.parent_result,
                relative_distance=outcome.relative_distance,
                score=scored.score,
                baseline=scored.baseline,
                gain=scored.gain,
                breakdown=scored.breakdown,
                seconds=outcome.seconds,
            )
        )

    def _record_contribution(
        self, s: Session, cand: m.Candidate, outcome: EvalOutcome, scored: Scored
    ) -> None:
        c = s.scalar(select(m.Contribution).where(m.Contribution.sha256 == cand.contribution_sha))
        if c is None:
            return
        c.status, c.score, c.gain, c.scored_on = (
            m.SCORED,
            scored.score,
            scored.gain,
            cand.parent_hash,
        )
        c.metrics = {"breakdown": scored.breakdown, "baseline": scored.baseline}
        c.in_pool = best_task_gain(outcome.parent(), outcome.candidate()) >= (
            self.config.pool_min_task_gain
        )
        if self.hooks is not None:
            self.hooks.contribution_scored(s, c)

    def _record_confirmation(
        self, cand_id: int, seed: int, outcome: EvalOutcome, scored: Scored
    ) -> None:
        with transaction(self.factory) as s:
            cand = s.get(m.Candidate, cand_id)
            if cand is None or cand.status != m.CONFIRMING:
                return
            version = current_version(s)
            self._add_evaluation(s, cand, CONFIRMATION, seed, outcome, scored)
            cand.confirm_gain = scored.gain
            stale = version is None or cand.parent_hash != version.hash
            if scored.gain <= self.config.margin or stale:
                cand.status = m.REJECTED
                cand.error = "parent superseded" if stale else "failed confirmation"
                return
            recipe = Recipe.model_validate(cand.recipe)
            parent_dir = self.store.version_dir(version.hash)
        # build outside the transaction (seconds of work), then commit the row
        version_hash = self.build_version(recipe, parent_dir)
        with transaction(self.factory) as s:
            cand = s.get(m.Candidate, cand_id)
            if cand is None or cand.status != m.CONFIRMING:
                return
            count = evolution_evaluations(s)
            v = m.Version(
                hash=version_hash,
                parent_hash=cand.parent_hash,
                recipe=cand.recipe,
                recipe_hash=cand.recipe_hash,
                candidate_id=cand.id,
                weights_path=self.store.relative(self.store.version_dir(version_hash)),
                score=scored.score,
                gain=scored.gain,
                metrics={"selection_gain": cand.gain, "confirmation": scored.breakdown},
                selection_seed=secrets.randbits(62),
                evaluations_at_accept=count,
            )
            existing = s.scalar(select(m.Version).where(m.Version.hash == version_hash))
            if existing is not None:  # the same weights again (e.g. a no-op mutation)
                cand.status, cand.error = m.REJECTED, "identical to an existing version"
                return
            s.add(v)
            cand.status = m.ACCEPTED
            s.flush()
            if self.hooks is not None:
                self.hooks.version_accepted(s, v)
        log.info("accepted version %s (gain G %.4f)", version_hash[:12], scored.gain)
        if self.on_accept is not None:
            self.on_accept(v)

    def build_version(self, recipe: Recipe, parent_dir: Any) -> str:
        """Rebuild ``recipe`` on its parent folder into the store; returns the weights hash."""
        from mergenet.deltas.models import ModelSource
        from mergenet.merge_strategies.recipe import build_to_dir

        staging = self.store.staging_dir()
        build_to_dir(recipe, parent_dir, staging, self.store.delta_path, check_parent=False)
        version_hash = ModelSource(staging).sha256()
        self.store.put_version_dir(staging, version_hash)
        return version_hash


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
