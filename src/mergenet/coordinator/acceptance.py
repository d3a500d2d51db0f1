"""Acceptance: a finished evaluation → S → the gain G → accept, reject or keep (one transaction).

The gain. Let ΔS = S − S_0, where S is the candidate's score against the current version and
S_0 the no-change score on the same rows (:func:`mergenet.evaluator.score.no_change_score`),
and ΔA the change of ``acc_choice`` on those rows, averaged with the task weights S uses
(``ScoreParams.task_weights``; uniform by default, the macro). The loop's gain is

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
* on **fresh confirmation batches** (new rows each, same candidate), a sequential paired
  test of candidate against parent item by item shows G > ``margin``
  (:mod:`.sequential`: one batch at a time, at most ``confirm_max_batches``, each recorded,
  so a restart resumes the sequence; measured false-accept rate and power in the README).

``margin``: 0.005 (S_0 ≈ 0.6 on the world). A candidate failing confirmation is ``rejected``; a
confirmed one whose parent was replaced meanwhile, as stale; one rebuilding a version, as identical.

Pay. A score is recorded and decides admission to the merge pool; it pays nothing. The
transaction that creates a version queues its leave-one-out attribution (1 + k evaluations for
k credited contributions, :mod:`mergenet.coordinator.attribution`), and the outcome that
completes it computes each contribution's marginal improvement and calls the hooks' pay.

Invariants. Every outcome is recorded in its own transaction, and an outcome that cannot be
recorded (a NaN metric, a result that does not parse) marks its candidate ``failed`` instead of
leaving it queued to be dispatched again forever; one bad outcome never stops the rest of its
batch. An outcome for a candidate no longer in the state it was dispatched for (a duplicate
after a restart) changes nothing. The version's weights are built outside any transaction
(seconds of work) and its row is committed only after they are complete in the store.

No pool, model or store needed: the builder is passed in; tested over fake pools."""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mergenet.coordinator import attribution, heuristic, sequential
from mergenet.coordinator import models as m
from mergenet.coordinator.decision_rows import dispatched
from mergenet.coordinator.sequential import seed_recorded as seen
from mergenet.coordinator.settings import LoopSettings
from mergenet.coordinator.state import current_version, current_weights, evolution_evaluations
from mergenet.coordinator.status import (
    EVOLUTION_KINDS,
    CandidateStatus,
    ContributionStatus,
    Kind,
    Purpose,
)
from mergenet.db import transaction
from mergenet.evaluator.score import ScoreError, ScoreParams, compute_score, no_change_score
from mergenet.merge_strategies.recipe import Recipe
from mergenet.protocol.evaluation import EvalOutcome
from mergenet.protocol.results import PRIMARY_ACCURACY, EvalResult

log = logging.getLogger("mergenet.coordinator.acceptance")

ACCURACY = PRIMARY_ACCURACY
DEFAULT_ACCURACY_WEIGHT = LoopSettings().accuracy_weight
"""γ when a caller gives none (the loop passes its settings' value)."""
ALIVE = (CandidateStatus.DONE, CandidateStatus.CONFIRMING, CandidateStatus.ACCEPTED)
"""Candidates that were scored and not rejected: rivals in selection, parents of proposals."""


@dataclass(frozen=True)
class Scored:
    score: float
    baseline: float
    gain: float
    """G = ΔS + γ·ΔA, what selection, acceptance and H(s) use."""
    breakdown: dict[str, Any]


def weighted_change(
    parent: EvalResult, candidate: EvalResult, attr: str, params: ScoreParams
) -> float:
    """Σ w_t (candidate_t − parent_t) of ``attr`` with S's task weights (uniform: the macro)."""
    weights = params.weights_for(sorted(parent.tasks))
    return sum(
        w * (getattr(candidate.tasks[t], attr) - getattr(parent.tasks[t], attr))
        for t, w in weights.items()
    )


def score_outcome(
    outcome: EvalOutcome,
    params: ScoreParams,
    accuracy_weight: float = DEFAULT_ACCURACY_WEIGHT,
) -> Scored:
    """S, S_0 and the gain G = (S − S_0) + γ·ΔA of a finished evaluation (same rows).

    Raises ``ScoreError`` when any of them is not a finite number (a NaN metric), so the
    caller fails the candidate instead of ranking it.
    """
    parent, candidate = outcome.parent(), outcome.candidate()
    b = compute_score(parent, candidate, relative_distance=outcome.relative_distance, params=params)
    s0 = no_change_score(parent, params)
    accuracy_gain = weighted_change(parent, candidate, ACCURACY, params)
    gain = b.S - s0 + accuracy_weight * accuracy_gain
    if not all(math.isfinite(x) for x in (b.S, s0, gain)):
        raise ScoreError(f"the evaluation gave no finite gain (S {b.S}, S_0 {s0}, G {gain})")
    breakdown = b.to_dict() | {
        "score_gain": b.S - s0,
        "accuracy_gain": accuracy_gain,
        "accuracy_weight": accuracy_weight,
    }
    return Scored(b.S, s0, gain, breakdown)


def best_task_gain(parent: EvalResult, candidate: EvalResult) -> float:
    """The largest relative answer-loss improvement over tasks."""
    gains = [
        (p.answer_loss - candidate.tasks[t].answer_loss) / p.answer_loss
        for t, p in parent.tasks.items()
        if p.answer_loss > 0 and math.isfinite(candidate.tasks[t].answer_loss)
    ]
    return max(gains, default=0.0)


def task_key(candidate_id: int, purpose: Purpose, seed: int) -> str:
    """The key an evaluation task is dispatched under (and its outcome comes back with)."""
    return f"{candidate_id}:{purpose}:{seed}"


def parse_key(key: str) -> tuple[int, Purpose, int]:
    cand_id, purpose, seed = key.split(":")
    return int(cand_id), Purpose(purpose), int(seed)


class LoopHooks(Protocol):
    """Side effects outside the loop's tables (rewards, chain); called inside the transaction.

    Optionally also ``contribution_credited(session, version, contribution, credited)``, the pay
    for a confirmed marginal improvement (:func:`mergenet.coordinator.attribution.finish`)."""

    def contribution_scored(self, session: Session, contribution: m.Contribution) -> None: ...

    def version_accepted(self, session: Session, version: m.Version) -> None: ...


@dataclass(frozen=True)
class BuiltVersion:
    hash: str
    """Canonical state-dict sha256 of the built weights."""
    weights_path: str
    """Their folder, relative to the artifact store root."""


class VersionBuilder(Protocol):
    """Builds ``recipe`` on its parent version into the store (complete before it returns)."""

    def __call__(self, recipe: Recipe) -> BuiltVersion: ...


def write_weights(session: Session, weights: dict[str, float], cause: int | None = None) -> int:
    """Append H(s) as a new step (the newest step is current); returns the step."""
    step = (session.scalar(select(func.max(m.StrategyWeight.step))) or 0) + 1
    session.add_all(
        m.StrategyWeight(step=step, strategy=s, weight=w, cause_candidate_id=cause)
        for s, w in sorted(weights.items())
    )
    return step


class Acceptance:
    """Records finished evaluations: the second half of the loop (the first is scheduling)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: LoopSettings,
        strategies: Iterable[str],
        build: VersionBuilder,
        hooks: LoopHooks | None = None,
    ):
        self.factory = factory
        self.settings = settings
        self.strategies = frozenset(strategies)
        self.build = build
        self.hooks = hooks
        self.on_accept: Callable[[m.Version], None] | None = None

    def record_all(self, outcomes: Iterable[EvalOutcome]) -> None:
        """Record each outcome on its own; one that fails marks its candidate failed."""
        for outcome in outcomes:
            try:
                self.record(outcome)
            except Exception as exc:
                log.exception("recording %s failed", outcome.key)
                try:
                    self.fail(outcome.key, f"recording the result failed: {exc}")
                except Exception:  # e.g. the database is gone: the row stays and is retried
                    log.exception("marking %s failed failed too", outcome.key)

    def record(self, outcome: EvalOutcome) -> None:
        if outcome.error is not None:
            log.warning("evaluation %s failed: %s", outcome.key, outcome.error)
            self.fail(outcome.key, outcome.error)
            return
        cand_id, purpose, seed = parse_key(outcome.key)
        if purpose is Purpose.FEED:  # the core's live feed: a measurement, no S, no decision
            from mergenet.coordinator import feed

            with transaction(self.factory) as s:
                cand = s.get(m.Candidate, cand_id)
                if cand is not None and cand.status == CandidateStatus.QUEUED:
                    result = outcome.parent_result or {}
                    feed.record(s, cand, seed, result, outcome.seconds, outcome.worker)
            return
        scored = score_outcome(outcome, self.settings.score, self.settings.accuracy_weight)
        if purpose is Purpose.CONFIRMATION:
            self._record_confirmation(cand_id, seed, outcome, scored)
            return
        with transaction(self.factory) as s:
            cand = s.get(m.Candidate, cand_id)
            if cand is None or cand.status != CandidateStatus.QUEUED:
                return  # already recorded (a duplicate outcome after a restart)
            _add_evaluation(s, cand, purpose, seed, outcome, scored)
            cand.score, cand.gain, cand.status = scored.score, scored.gain, CandidateStatus.DONE
            if cand.kind == Kind.ATTRIBUTION:  # one leave-one-out evaluation of a version
                attribution.finish(s, cand, self.settings.attribution_margin, self.hooks)
            elif purpose is Purpose.CONTRIBUTION:
                self._record_contribution(s, cand, outcome, scored)
            else:
                self._record_selection(s, cand, scored)

    def fail(self, key: str, error: str) -> None:
        """Mark the candidate behind ``key`` (and a contribution it scores) failed."""
        cand_id = parse_key(key)[0]
        with transaction(self.factory) as s:
            cand = s.get(m.Candidate, cand_id)
            if cand is None or cand.status not in (
                CandidateStatus.QUEUED,
                CandidateStatus.CONFIRMING,
            ):
                return
            cand.status, cand.error = CandidateStatus.FAILED, error[:2000]
            if cand.kind == Kind.CONTRIBUTION:
                c = s.scalar(
                    select(m.Contribution).where(m.Contribution.sha256 == cand.contribution_sha)
                )
                if c is not None and c.status == ContributionStatus.RECEIVED:
                    c.status = ContributionStatus.FAILED
            elif cand.kind == Kind.ATTRIBUTION:
                attribution.finish(s, cand, self.settings.attribution_margin, self.hooks)

    def _record_selection(self, s: Session, cand: m.Candidate, scored: Scored) -> None:
        cfg = self.settings
        if cand.strategy in self.strategies:
            weights = heuristic.update(
                current_weights(s), cand.strategy, scored.gain, beta=cfg.beta, floor=cfg.floor
            )
            write_weights(s, weights, cand.id)
        version = current_version(s)
        if version is None or cand.parent_hash != version.hash or scored.gain <= cfg.margin:
            return
        rival = s.scalar(
            select(func.max(m.Candidate.gain)).where(
                m.Candidate.parent_hash == cand.parent_hash,
                m.Candidate.sample_seed == cand.sample_seed,
                m.Candidate.kind.in_(EVOLUTION_KINDS),
                m.Candidate.id != cand.id,
                m.Candidate.status.in_(ALIVE),
            )
        )
        if rival is None or scored.gain >= rival:
            cand.status = CandidateStatus.CONFIRMING

    def _record_contribution(
        self, s: Session, cand: m.Candidate, outcome: EvalOutcome, scored: Scored
    ) -> None:
        c = s.scalar(select(m.Contribution).where(m.Contribution.sha256 == cand.contribution_sha))
        if c is None or c.status != ContributionStatus.RECEIVED:
            return  # scored already: a score and a reward are recorded once
        c.status, c.score, c.gain, c.scored_on = (
            ContributionStatus.SCORED,
            scored.score,
            scored.gain,
            cand.parent_hash,
        )
        c.metrics = {"breakdown": scored.breakdown, "baseline": scored.baseline}
        c.in_pool = best_task_gain(outcome.parent(), outcome.candidate()) >= (
            self.settings.pool_min_task_gain
        )
        if self.hooks is not None:
            self.hooks.contribution_scored(s, c)

    def _record_confirmation(
        self, cand_id: int, seed: int, outcome: EvalOutcome, scored: Scored
    ) -> None:
        with transaction(self.factory) as s:
            cand = s.get(m.Candidate, cand_id)  # decided, or this batch again after a restart:
            if cand is None or cand.status != CandidateStatus.CONFIRMING or seen(s, cand_id, seed):
                return
            version = current_version(s)
            _add_evaluation(s, cand, Purpose.CONFIRMATION, seed, outcome, scored)
            s.flush()
            d = sequential.decide_recorded(s, cand_id, self.settings)
            cand.confirm_gain = d.gain
            stale = version is None or cand.parent_hash != version.hash
            if d.verdict is sequential.Verdict.CONTINUE and not stale:
                return  # stays confirming: the loop draws the next fresh batch
            if d.verdict is sequential.Verdict.REJECT or stale:
                cand.status = CandidateStatus.REJECTED
                cand.error = "parent superseded" if stale else f"failed confirmation: {d.reason}"
                return
            recipe = Recipe.model_validate(cand.recipe)
        built = self.build(recipe)  # outside the transaction (seconds of work)
        sd = scored.breakdown | {"sequential": d.to_dict()}  # the version's G: Ĝ over batches
        v = self._commit_version(cand_id, built, replace(scored, gain=d.gain, breakdown=sd))
        if v is not None:
            log.info("accepted version %s (G %.4f, %s)", built.hash[:12], d.gain, d.reason)
            if self.on_accept is not None:
                self.on_accept(v)

    def _commit_version(
        self, cand_id: int, built: BuiltVersion, scored: Scored
    ) -> m.Version | None:
        with transaction(self.factory) as s:
            cand = s.get(m.Candidate, cand_id)
            if cand is None or cand.status != CandidateStatus.CONFIRMING:
                return None
            existing = s.scalar(select(m.Version).where(m.Version.hash == built.hash))
            if existing is not None:  # the same weights again (e.g. a no-op mutation)
                cand.status, cand.error = (
                    CandidateStatus.REJECTED,
                    "identical to an existing version",
                )
                return None
            v = m.Version(
                hash=built.hash,
                parent_hash=cand.parent_hash,
                recipe=cand.recipe,
                recipe_hash=cand.recipe_hash,
                candidate_id=cand.id,
                weights_path=built.weights_path,
                score=scored.score,
                gain=scored.gain,
                metrics={"selection_gain": cand.gain, "confirmation": scored.breakdown},
                selection_seed=secrets.randbits(62),
                evaluations_at_accept=evolution_evaluations(s),
            )
            s.add(v)
            cand.status = CandidateStatus.ACCEPTED
            s.flush()
            credit = attribution.plan(s, v, secrets.randbits(62))
            if credit is not None:  # priced later on fresh rows, not paid by the version
                v.metrics = dict(v.metrics or {}) | {"attribution": credit}
            if self.hooks is not None:
                self.hooks.version_accepted(s, v)
        return v


def _add_evaluation(
    s: Session,
    cand: m.Candidate,
    purpose: Purpose,
    seed: int,
    outcome: EvalOutcome,
    scored: Scored,
) -> None:
    row_epoch, rows_label = dispatched(s, purpose, seed)  # what regenerates the rows
    s.add(
        m.Evaluation(
            candidate_id=cand.id,
            purpose=purpose,
            sample_seed=seed,
            row_epoch=row_epoch,
            rows_label=rows_label,
            result=outcome.result,
            parent_result=outcome.parent_result,
            relative_distance=outcome.relative_distance,
            score=scored.score,
            baseline=scored.baseline,
            gain=scored.gain,
            breakdown=scored.breakdown,
            seconds=outcome.seconds,
            worker=outcome.worker,
        )
    )
